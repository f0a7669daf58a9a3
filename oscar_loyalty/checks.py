"""System checks: each explains a wrong installation in one sentence, with its fix."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.functional import Promise

from .conf import PREFIX, loyalty_settings

#: Tag of the checks of both apps, so the dashboard can run just these.
TAG = "loyalty"

BASKET_MIDDLEWARE = "oscar.apps.basket.middleware.BasketMiddleware"
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
    return errors


@register(TAG)
def check_settings(app_configs=None, **kwargs):
    errors = []
    name = loyalty_settings.PROGRAMME_NAME
    if not isinstance(name, str | Promise) or not str(name).strip():
        errors.append(
            Error(
                f"{PREFIX}PROGRAMME_NAME must be a non-empty text, not {name!r}.",
                id="oscar_loyalty.E010",
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
