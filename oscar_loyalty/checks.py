"""System checks: each explains a wrong installation in one sentence, with its fix."""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import connections
from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise

from . import earning, rules
from .conf import PREFIX, site_settings

#: Tag of the checks of both apps, so the dashboard can run just these.
TAG = "loyalty"

BASKET_MIDDLEWARE = "oscar.apps.basket.middleware.BasketMiddleware"
LOYALTY_MIDDLEWARE = "oscar_loyalty.middleware.LoyaltyMiddleware"
DASHBOARD_APP = "oscar_loyalty.dashboard.apps.LoyaltyDashboardConfig"


LOYALTY_APP_ENTRIES = {"oscar_loyalty", "oscar_loyalty.apps.OscarLoyaltyConfig"}


def _first_index(matches):
    """Position of the first INSTALLED_APPS entry ``matches`` accepts, or None."""
    for index, entry in enumerate(settings.INSTALLED_APPS):
        if matches(entry):
            return index
    return None


@register(TAG)
def check_installation(app_configs=None, **kwargs):
    errors = []
    oscar_index = _first_index(lambda entry: entry.startswith("oscar."))
    if oscar_index is None:
        errors.append(
            Error(
                "oscar_loyalty needs django-oscar: add oscar.config.Shop and Oscar's "
                "apps to INSTALLED_APPS.",
                id="oscar_loyalty.E001",
            )
        )
    loyalty_index = _first_index(LOYALTY_APP_ENTRIES.__contains__)
    if oscar_index is not None and loyalty_index is not None:
        if loyalty_index > oscar_index:
            errors.append(
                Error(
                    "oscar_loyalty must come before Oscar's apps in INSTALLED_APPS, "
                    "or its templates cannot extend Oscar's account and basket pages.",
                    hint="Move 'oscar_loyalty.apps.OscarLoyaltyConfig' above "
                    "'oscar.config.Shop'.",
                    id="oscar_loyalty.E002",
                )
            )
    if BASKET_MIDDLEWARE not in settings.MIDDLEWARE:
        errors.append(
            Error(
                "Oscar's BasketMiddleware is missing from MIDDLEWARE, so baskets (and "
                "points redeemed in them) cannot be found.",
                hint=f"Add '{BASKET_MIDDLEWARE}' after AuthenticationMiddleware.",
                id="oscar_loyalty.E003",
            )
        )
    elif LOYALTY_MIDDLEWARE not in settings.MIDDLEWARE:
        errors.append(
            Warning(
                "LoyaltyMiddleware is not in MIDDLEWARE, so every page that prices a "
                "signed-in shopper's basket asks the database whether points are "
                "applied (one more query per page).",
                hint=f"Add '{LOYALTY_MIDDLEWARE}' after the BasketMiddleware.",
                id="oscar_loyalty.W007",
            )
        )
    if DASHBOARD_APP not in settings.INSTALLED_APPS:
        errors.append(
            Warning(
                "The loyalty dashboard is not installed, so shop staff have no screens "
                "to run the programme.",
                hint=f"Add '{DASHBOARD_APP}' to INSTALLED_APPS and mount its URLs.",
                id="oscar_loyalty.W004",
            )
        )
    elif not _navigation_mentions(
        getattr(settings, "OSCAR_DASHBOARD_NAVIGATION", []), "loyalty_dashboard:"
    ):
        errors.append(
            Warning(
                "OSCAR_DASHBOARD_NAVIGATION has no link to the loyalty dashboard, so "
                "staff will not find it in Oscar's menu.",
                hint="Append oscar_loyalty.dashboard.navigation."
                "LOYALTY_DASHBOARD_NAVIGATION (with +, not +=).",
                id="oscar_loyalty.W005",
            )
        )
    if not _url_exists("loyalty:apply-points"):
        errors.append(
            Warning(
                "The shopper's loyalty URLs are not mounted, so shoppers cannot pay "
                "with points or open their Loyalty tab.",
                hint='Add path("shop/loyalty/", apps.get_app_config("oscar_loyalty")'
                ".urls) to your URLconf, before Oscar's own include.",
                id="oscar_loyalty.W006",
            )
        )
    return errors


def _url_exists(name):
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


@register(TAG)
def check_settings(app_configs=None, **kwargs):
    errors = []
    name = site_settings.PROGRAMME_NAME
    if not isinstance(name, str | Promise) or not str(name).strip():
        errors.append(
            Error(
                f"{PREFIX}PROGRAMME_NAME must be a non-empty text, not {name!r}.",
                id="oscar_loyalty.E010",
            )
        )
    errors.extend(policy_errors())
    errors.extend(check_channels())
    return errors


def policy_errors(values=site_settings):
    """The earning, expiry and hold policy: each value of the right kind.

    ``values`` answers ``values.NAME``: the Django settings for the system check,
    the owner's proposed values for the dashboard's settings form."""
    errors = []

    def choice(name, allowed):
        value = getattr(values, name)
        if value not in allowed:
            errors.append(
                Error(
                    f"{PREFIX}{name} is {value!r}; use one of "
                    f"{', '.join(map(repr, allowed))}.",
                    id="oscar_loyalty.E011",
                )
            )

    def positive_whole_number(name):
        value = getattr(values, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append(
                Error(
                    f"{PREFIX}{name} must be a whole number above 0, not {value!r}.",
                    id="oscar_loyalty.E012",
                )
            )

    def amount(name):
        value = getattr(values, name)
        try:
            valid = Decimal(str(value)) >= 0
        except InvalidOperation:
            valid = False
        if not valid:
            errors.append(
                Error(
                    f"{PREFIX}{name} must be a number of 0 or more, such as "
                    f'"1" or "0.5", not {value!r}.',
                    id="oscar_loyalty.E013",
                )
            )

    choice("EARN_ROUNDING", tuple(earning.ROUNDINGS))
    choice("EXPIRY_ROUNDING", rules.EXPIRY_ROUNDINGS)
    choice("TIER_BASIS", rules.TIER_BASES)
    choice("TIER_WINDOW", rules.TIER_WINDOWS)
    positive_whole_number("TIER_WINDOW_MONTHS")
    grace = values.TIER_GRACE_DAYS
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        errors.append(
            Error(
                f"{PREFIX}TIER_GRACE_DAYS must be a whole number of days, 0 or more, "
                f"not {grace!r}.",
                id="oscar_loyalty.E012",
            )
        )
    positive_whole_number("EXPIRY_MONTHS")
    for chunk in (
        "EXPIRY_CHUNK",
        "CONFIRM_CHUNK",
        "REMINDER_CHUNK",
        "TIER_REVIEW_CHUNK",
    ):
        positive_whole_number(chunk)
    positive_whole_number("VALUE_WINDOW_MONTHS")
    positive_whole_number("CHURN_PERIOD_DAYS")
    positive_whole_number("SCORES_DAILY_DAYS")
    weights = values.CHURN_WEIGHTS
    if (
        not isinstance(weights, dict)
        or set(weights) != {"interval", "frequency", "points", "visits"}
        or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 0
            for w in weights.values()
        )
        or sum(weights.values()) != 100
    ):
        errors.append(
            Error(
                f"{PREFIX}CHURN_WEIGHTS must give the signals interval, frequency, "
                f"points and visits whole-number weights adding up to 100, such as "
                f"{{'interval': 40, 'frequency': 25, 'points': 15, 'visits': 20}}, "
                f"not {weights!r}.",
                id="oscar_loyalty.E012",
            )
        )
    if values.SETTINGS_CACHE_SECONDS is not None:
        positive_whole_number("SETTINGS_CACHE_SECONDS")
    bounds = values.ACTIVITY_DAYS
    if (
        not isinstance(bounds, list | tuple)
        or len(bounds) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in bounds)
        or not 0 < bounds[0] < bounds[1] < bounds[2]
    ):
        errors.append(
            Error(
                f"{PREFIX}ACTIVITY_DAYS must be three rising whole numbers of days "
                f"(active, cooling, at risk), such as (30, 90, 180), not {bounds!r}.",
                id="oscar_loyalty.E012",
            )
        )
    positive_whole_number("HOLD_TIMEOUT_MINUTES")
    positive_whole_number("IMPORT_KEEP_DAYS")
    positive_whole_number("IMPORT_MAX_MB")
    positive_whole_number("VOUCHER_ATTEMPTS_PER_USER")
    positive_whole_number("VOUCHER_ATTEMPTS_PER_IP")
    positive_whole_number("VOUCHER_ATTEMPT_WINDOW_MINUTES")
    length = values.COUPON_CODE_LENGTH
    if (
        isinstance(length, bool)
        or not isinstance(length, int)
        or not 10 <= length <= 64
    ):
        errors.append(
            Error(
                f"{PREFIX}COUPON_CODE_LENGTH must be a whole number from 10 to 64 "
                f"(shorter codes can be guessed), not {length!r}.",
                id="oscar_loyalty.E017",
            )
        )
    ahead = values.BIRTHDAY_DAYS_AHEAD
    if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= 60:
        errors.append(
            Error(
                f"{PREFIX}BIRTHDAY_DAYS_AHEAD must be a whole number of days from 0 "
                f"to 60, not {ahead!r}.",
                id="oscar_loyalty.E012",
            )
        )
    header = values.CLIENT_IP_HEADER
    if not isinstance(header, str) or not header:
        errors.append(
            Error(
                f"{PREFIX}CLIENT_IP_HEADER must name a request.META key such as "
                f'"REMOTE_ADDR", not {header!r}.',
                id="oscar_loyalty.E012",
            )
        )
    amount("EARN_RATE")
    amount("EARN_MINIMUM_ORDER")
    amount("REDEEM_POINT_VALUE")
    amount("REDEEM_MAX_SHARE")
    positive_whole_number("REDEEM_STEP")
    minimum = values.REDEEM_MINIMUM_BALANCE
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        errors.append(
            Error(
                f"{PREFIX}REDEEM_MINIMUM_BALANCE must be a whole number of 0 or more, "
                f"not {minimum!r}.",
                id="oscar_loyalty.E012",
            )
        )
    share = values.REDEEM_MAX_SHARE
    try:
        share_ok = Decimal(str(share)) <= 1
    except InvalidOperation:
        share_ok = True  # reported above
    if not share_ok:
        errors.append(
            Error(
                f"{PREFIX}REDEEM_MAX_SHARE is the share of an order points may pay "
                f'for, from 0 to 1 (such as "0.5"), not {share!r}.',
                id="oscar_loyalty.E015",
            )
        )
    try:
        step_value = Decimal(str(values.REDEEM_POINT_VALUE)) * int(values.REDEEM_STEP)
        whole_cents = step_value == step_value.quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError, ValueError):
        whole_cents = True  # reported above
    if not whole_cents:
        errors.append(
            Error(
                f"{PREFIX}REDEEM_STEP points at {PREFIX}REDEEM_POINT_VALUE each are "
                f"worth {step_value}, not a whole number of cents, so shoppers would "
                "lose a fraction of a cent on every redemption.",
                hint="Choose a step and a point value whose product has at most two "
                'decimals, such as 100 points at "0.01".',
                id="oscar_loyalty.E016",
            )
        )
    after = values.CONFIRM_AFTER_DAYS
    if after is not None and (
        isinstance(after, bool) or not isinstance(after, int) or after <= 0
    ):
        errors.append(
            Error(
                f"{PREFIX}CONFIRM_AFTER_DAYS must be None or a whole number of days "
                f"above 0, not {after!r}.",
                id="oscar_loyalty.E012",
            )
        )
    days = values.REMINDER_DAYS
    if not isinstance(days, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in days
    ):
        errors.append(
            Error(
                f"{PREFIX}REMINDER_DAYS must be a list of whole numbers of days "
                f"above 0, such as (30, 15, 7), not {days!r}.",
                id="oscar_loyalty.E012",
            )
        )
    both = set(values.CONFIRM_STATUSES) & set(values.REVERSE_STATUSES)
    if both:
        errors.append(
            Error(
                f"{PREFIX}CONFIRM_STATUSES and {PREFIX}REVERSE_STATUSES share "
                f"{sorted(both)!r}: an order status cannot both confirm and reverse "
                "points.",
                id="oscar_loyalty.E014",
            )
        )
    return errors


def check_channels():
    from django.utils.module_loading import import_string

    from .notifications import Channel

    errors = []
    for path in site_settings.NOTIFICATION_CHANNELS:
        try:
            channel = import_string(path)
        except ImportError as exc:
            channel, reason = None, str(exc)
        else:
            reason = "not a subclass of oscar_loyalty.notifications.Channel"
        if not (isinstance(channel, type) and issubclass(channel, Channel)):
            errors.append(
                Error(
                    f"{PREFIX}NOTIFICATION_CHANNELS: {path!r} is not a channel "
                    f"({reason}).",
                    id="oscar_loyalty.E018",
                )
            )
        elif channel.purpose not in ("email", "sms", "profiling", "reminders"):
            errors.append(
                Error(
                    f"{PREFIX}NOTIFICATION_CHANNELS: {path!r} needs a purpose "
                    "(the consent it sends under: 'email' or 'sms').",
                    id="oscar_loyalty.E018",
                )
            )
    return errors


@register(TAG, Tags.database)
def check_database(app_configs=None, databases=None, **kwargs):
    errors = []
    for alias in databases or []:
        features = connections[alias].features
        if not features.can_return_rows_from_bulk_insert:
            errors.append(
                Error(
                    f"Database {alias!r} cannot return the ids of rows inserted in "
                    "bulk, which the points ledger needs: use PostgreSQL, or SQLite "
                    "3.35 or newer.",
                    id="oscar_loyalty.E020",
                )
            )
    return errors


def _navigation_mentions(items, url_prefix):
    for item in items:
        if str(item.get("url_name") or "").startswith(url_prefix):
            return True
        if _navigation_mentions(item.get("children", []), url_prefix):
            return True
    return False
