"""The plugin's settings, ``OSCAR_LOYALTY_*``, with defaults.

Read at call time (``loyalty_settings.NAME``), never copied at import, so that
``override_settings`` in tests and per-environment settings both work.

The programme's policy (:data:`EDITABLE`: earning, redeeming, expiry, confirming,
tiers) can also be changed by the owner in the dashboard: a value saved there
(a :class:`~oscar_loyalty.models.ProgrammeSetting` row) wins over the Django
setting until the owner sets it back. Those rows are kept in Django's cache
(one query when it is cold; dropped whenever a row changes, and after
``OSCAR_LOYALTY_SETTINGS_CACHE_SECONDS`` in any case, for caches not shared between
processes) and read from it once per request and once per Celery task, so a
request or a task sees one consistent policy at no query; outside both (a
shell, a management command) each read asks the cache, unless the caller opens
:func:`settings_scope`. The system checks read the Django settings only
(:data:`site_settings`), so they never need the database.
"""

import contextlib
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
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
    # Member segments (members who agreed to profiling, scored nightly): activity
    # by days since the last interaction (order, sign-in, check-in, redemption,
    # joining): active up to the first, cooling up to the second, at risk up to
    # the third, dormant beyond ...
    "ACTIVITY_DAYS": (30, 90, 180),
    # ... and value by spend over this many months (top 20 %, middle 60 %,
    # bottom 20 % of the members who spent anything).
    "VALUE_WINDOW_MONTHS": 12,
    # Churn risk (0-100, oscar_loyalty.scoring): recent orders and redemptions
    # are compared over two periods of this many days (the last and the one
    # before) ...
    "CHURN_PERIOD_DAYS": 90,
    # ... and the four signals weigh this much (whole numbers adding up to 100):
    # the purchase interval stretching against the member's own average,
    # falling order frequency, falling points use, and days without a visit.
    "CHURN_WEIGHTS": {"interval": 40, "frequency": 25, "points": 15, "visits": 20},
    # Every scoring run keeps its members' rows this many days; older runs keep
    # their summary, and only the first run of each month its rows.
    "SCORES_DAILY_DAYS": 90,
    # Seconds a process may rely on the cached programme settings changed in the
    # dashboard (a cache per process, such as the default local-memory one, does
    # not hear of another process's change; a shared one is told at once).
    "SETTINGS_CACHE_SECONDS": 60,
    "CONFIRM_CHUNK": 50_000,
    "REMINDER_CHUNK": 10_000,
    "TIER_REVIEW_CHUNK": 50_000,
}


#: The settings an owner may change in the dashboard (the programme's policy).
#: The others are the installation's (channels, chunk sizes, limits, headers).
EDITABLE = (
    "PROGRAMME_NAME",
    "EARN_RATE",
    "EARN_ROUNDING",
    "EARN_INCLUDES_TAX",
    "EARN_MINIMUM_ORDER",
    "CONFIRM_STATUSES",
    "REVERSE_STATUSES",
    "CONFIRM_AFTER_DAYS",
    "REDEEM_POINT_VALUE",
    "REDEEM_MINIMUM_BALANCE",
    "REDEEM_MAX_SHARE",
    "REDEEM_STEP",
    "HOLD_TIMEOUT_MINUTES",
    "EXPIRY_MONTHS",
    "EXPIRY_ROUNDING",
    "REMINDER_DAYS",
    "TIER_BASIS",
    "TIER_WINDOW",
    "TIER_WINDOW_MONTHS",
    "TIER_GRACE_DAYS",
    "BIRTHDAY_DAYS_AHEAD",
)

CACHE_KEY = "oscar_loyalty:programme_settings"

#: The dashboard's values read in the current request or task ({} when none),
#: or None outside both.
_scope = ContextVar("oscar_loyalty_settings_scope", default=None)
#: Whether the settings table was found (looked up until it is, so a shop that
#: has not migrated yet runs on its Django settings).
_table_found = False


def _table_exists():
    global _table_found
    if not _table_found:
        from .models import ProgrammeSetting

        table = ProgrammeSetting._meta.db_table
        _table_found = table in connection.introspection.table_names()
    return _table_found


def _load_overrides():
    from .models import ProgrammeSetting

    if not _table_exists():
        return {}
    try:
        rows = ProgrammeSetting.objects.filter(name__in=EDITABLE).values_list(
            "name", "value"
        )
        return {name: decode(name, value) for name, value in rows}
    except DatabaseError:  # pragma: no cover - a database being migrated
        if connection.in_atomic_block:
            raise
        return {}


def _cached_overrides():
    values = cache.get(CACHE_KEY)
    if values is None:
        values = _load_overrides()
        cache.set(CACHE_KEY, values, site_settings.SETTINGS_CACHE_SECONDS)
    return values


def overrides():
    """{name: value} of the settings changed in the dashboard (from Django's
    cache, once per request or task)."""
    scope = _scope.get()
    if scope is None:
        return _cached_overrides()
    if "values" not in scope:
        scope["values"] = _cached_overrides()
    return scope["values"]


def open_scope():
    """Start a request's or a task's view of the settings; returns a token for
    :func:`close_scope`."""
    return _scope.set({})


def close_scope(token=None):
    if token is None:
        _scope.set(None)
    else:
        _scope.reset(token)


def forget_overrides():
    """Read the dashboard's values again at the next read (after a change):
    now, and once more when the change commits (a process that read the rows
    in between cached what was still committed)."""
    scope = _scope.get()
    if scope is not None:
        scope.clear()
    cache.delete(CACHE_KEY)
    transaction.on_commit(lambda: cache.delete(CACHE_KEY))


@contextlib.contextmanager
def settings_scope():
    """Read the dashboard's values once for the block (commands, scripts)."""
    token = open_scope()
    try:
        yield
    finally:
        close_scope(token)


def decode(name, value):
    """A stored value in the form the Django setting has (tuples stay tuples)."""
    if isinstance(DEFAULTS.get(name), tuple) and isinstance(value, list):
        return tuple(value)
    return value


class LoyaltySettings:
    """Attribute access to ``OSCAR_LOYALTY_<NAME>`` with the plugin's default;
    with ``dashboard=True`` (:data:`loyalty_settings`) the owner's values from
    the dashboard come first."""

    def __init__(self, dashboard=True):
        self._dashboard = dashboard

    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"{PREFIX}{name} is not a setting of oscar_loyalty")
        if self._dashboard and name in EDITABLE:
            found = overrides()
            if name in found:
                return found[name]
        return getattr(settings, PREFIX + name, DEFAULTS[name])

    def as_dict(self):
        """Every setting with its value in force, for the dashboard's overview."""
        return {PREFIX + name: getattr(self, name) for name in sorted(DEFAULTS)}


#: The settings in force: the dashboard's values, then Django's, then defaults.
loyalty_settings = LoyaltySettings()
#: The Django settings (and defaults) alone: what the system checks validate and
#: what "set back" returns to.
site_settings = LoyaltySettings(dashboard=False)
