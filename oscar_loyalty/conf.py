"""The plugin's settings, ``OSCAR_LOYALTY_*``, with defaults.

Read at call time (``loyalty_settings.NAME``), never copied at import, so that
``override_settings`` in tests and per-environment settings both work.
"""

from django.conf import settings
from django.utils.translation import gettext_lazy as _

PREFIX = "OSCAR_LOYALTY_"

DEFAULTS = {
    # Shown to shoppers and owners wherever the programme is named.
    "PROGRAMME_NAME": _("Members' Club"),
    # Confirmed points expire this many months after confirmation ...
    "EXPIRY_MONTHS": 12,
    # ... rounded up to the end of that month or year: "none", "month_end", "year_end".
    "EXPIRY_ROUNDING": "none",
    # Points applied to a basket are released if no order captures them in time.
    "HOLD_TIMEOUT_MINUTES": 30,
    # Earning: points per unit of currency of each line's price after discounts.
    "EARN_RATE": "1",
    # "floor" (default), "round" (half up) or "ceil", per order line.
    "EARN_ROUNDING": "floor",
    # Whether tax counts towards points (the line price including tax).
    "EARN_INCLUDES_TAX": False,
    # Orders below this total (after discounts, excluding shipping) earn nothing.
    "EARN_MINIMUM_ORDER": "0",
    # Order statuses that confirm an order's pending points ...
    "CONFIRM_STATUSES": ("Complete",),
    # ... and that reverse them (and give redeemed points back).
    "REVERSE_STATUSES": ("Cancelled", "Refunded"),
    # Payment event type codes that reverse the refunded lines' share of points.
    "REFUND_EVENT_CODES": ("refund", "refunded"),
    # Return window: pending points are also confirmed this many days after the
    # order was placed (None: only the confirm statuses confirm them).
    "CONFIRM_AFTER_DAYS": None,
    # Reminder e-mails this many days before points expire (members who agreed).
    "REMINDER_DAYS": (30, 15, 7),
    # Where members' messages go (welcome, points confirmed, tier up/down, coupon
    # issued, birthday, reward redeemed): dotted paths of channel classes
    # (oscar_loyalty.notifications.Channel). Each sends only to members who agreed
    # to its purpose. "oscar_loyalty.notifications.LoggingChannel" shows how an
    # SMS or push backend plugs in.
    "NOTIFICATION_CHANNELS": ("oscar_loyalty.notifications.EmailChannel",),
    # A members file uploaded but not imported keeps its content this many days
    # (to be checked again or imported), then it is deleted; the report stays.
    "IMPORT_KEEP_DAYS": 7,
    # The largest members file the dashboard takes, in MB; larger files go through
    # "manage.py import_members" (streamed from disk).
    "IMPORT_MAX_MB": 20,
    # Redeeming at checkout: the money one point is worth, in the shop's currency ...
    "REDEEM_POINT_VALUE": "0.01",
    # ... the spendable points a member needs before they can redeem at all ...
    "REDEEM_MINIMUM_BALANCE": 100,
    # ... the largest share of the basket (after other discounts, shipping
    # excluded) points may pay for ...
    "REDEEM_MAX_SHARE": "0.5",
    # ... and points are applied in multiples of this step (also the least applied).
    "REDEEM_STEP": 100,
    # Tiers: what qualifies a member, "spend" (money, on the earning tax basis),
    # "points" (earned from orders) or "orders" ...
    "TIER_BASIS": "spend",
    # ... counted over a rolling window of this many months (confirmed activity
    # placed within it) ...
    "TIER_WINDOW_MONTHS": 12,
    # ... or, with "calendar_year", over the current calendar year in TIME_ZONE.
    "TIER_WINDOW": "rolling",
    # A review finding a member below their tier downgrades them only after this
    # many days of grace (0: at once).
    "TIER_GRACE_DAYS": 30,
    # Member coupons: length of their codes (at least 10), from an alphabet
    # without look-alikes (no 0/O, 1/I/L).
    "COUPON_CODE_LENGTH": 12,
    # Birthday coupons are issued this many days before the birthday (0: on it).
    "BIRTHDAY_DAYS_AHEAD": 0,
    # Voucher codes that do not exist for the shopper, tried per window, before
    # the voucher form refuses more: per signed-in user and per address.
    "VOUCHER_ATTEMPTS_PER_USER": 10,
    "VOUCHER_ATTEMPTS_PER_IP": 30,
    "VOUCHER_ATTEMPT_WINDOW_MINUTES": 15,
    # The request header with the client's address. Behind a proxy, name the
    # header it sets (e.g. "HTTP_X_FORWARDED_FOR") only if the proxy overwrites it.
    "CLIENT_IP_HEADER": "REMOTE_ADDR",
    # Background jobs fan out over id ranges of this many rows a task: lots to
    # expire, pending lots to confirm, members to remind, members to review.
    # Smaller: more, shorter tasks spread over more workers.
    "EXPIRY_CHUNK": 50_000,
    "CONFIRM_CHUNK": 50_000,
    "REMINDER_CHUNK": 10_000,
    "TIER_REVIEW_CHUNK": 50_000,
}


class LoyaltySettings:
    """Attribute access to ``OSCAR_LOYALTY_<NAME>`` with the plugin's default."""

    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"{PREFIX}{name} is not a setting of oscar_loyalty")
        return getattr(settings, PREFIX + name, DEFAULTS[name])

    def as_dict(self):
        """Every setting with its value in force, for the dashboard's overview."""
        return {PREFIX + name: getattr(self, name) for name in sorted(DEFAULTS)}


loyalty_settings = LoyaltySettings()
