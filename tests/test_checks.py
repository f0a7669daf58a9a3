"""The system checks of both apps: each fires with its id on a wrong installation.

The check functions are called directly. Settings they read at call time are changed
with pytest-django's ``settings`` fixture, except ``INSTALLED_APPS``: overriding that
through ``override_settings`` re-populates Django's app registry (``ready()`` of every
Oscar and Wagtail app again), so the tests patch the attribute on
``django.conf.settings`` with ``monkeypatch`` instead, which sends no
``setting_changed`` signal and leaves the registry alone.
"""

import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.utils.translation import gettext_lazy

from oscar_loyalty import checks as loyalty_checks
from oscar_loyalty.dashboard.navigation import LOYALTY_DASHBOARD_NAVIGATION
from wagtail_members import checks as members_checks

LOYALTY_APP = "oscar_loyalty.apps.OscarLoyaltyConfig"
DASHBOARD_APP = "oscar_loyalty.dashboard.apps.LoyaltyDashboardConfig"
MEMBERS_APP = "wagtail_members.apps.WagtailMembersConfig"
BASKET_MIDDLEWARE = "oscar.apps.basket.middleware.BasketMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


def ids(messages):
    return [message.id for message in messages]


@pytest.fixture
def installed_apps(monkeypatch):
    """Set ``settings.INSTALLED_APPS`` as the checks see it, without an app reload."""

    def set_installed_apps(entries):
        monkeypatch.setattr(django_settings, "INSTALLED_APPS", list(entries))

    return set_installed_apps


def without(entries, *unwanted):
    return [entry for entry in entries if entry not in unwanted]


def moved_after(entries, entry, anchor):
    """``entries`` with ``entry`` moved to just after ``anchor``."""
    entries = without(entries, entry)
    entries.insert(entries.index(anchor) + 1, entry)
    return entries


# The real installation ----------------------------------------------------------------


def test_the_example_shop_passes_every_loyalty_check():
    assert checks.run_checks(tags=[loyalty_checks.TAG]) == []


def test_both_apps_register_their_checks_under_the_loyalty_tag():
    registered = checks.registry.registry.get_checks()
    tagged = {
        check
        for check in registered
        if loyalty_checks.TAG in getattr(check, "tags", ())
    }

    assert {
        loyalty_checks.check_installation,
        loyalty_checks.check_settings,
        members_checks.check_installation,
    } <= tagged


def test_the_checks_leave_the_app_registry_as_it_was(installed_apps):
    from django.apps import apps

    before = [config.label for config in apps.get_app_configs()]
    installed_apps(without(django_settings.INSTALLED_APPS, DASHBOARD_APP))

    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.W004"]
    assert [config.label for config in apps.get_app_configs()] == before


# oscar_loyalty: installation ----------------------------------------------------------


def test_without_oscar_the_loyalty_app_reports_e001(installed_apps):
    installed_apps(
        entry
        for entry in django_settings.INSTALLED_APPS
        if entry != "oscar" and not entry.startswith("oscar.")
    )

    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.E001"]


def test_the_loyalty_app_listed_after_oscar_reports_e002(installed_apps):
    # Only the main app moves: its templates are the ones that override Oscar's,
    # whatever the position of the dashboard sub-app.
    installed_apps(
        moved_after(django_settings.INSTALLED_APPS, LOYALTY_APP, "oscar.config.Shop")
    )

    messages = loyalty_checks.check_installation()

    assert ids(messages) == ["oscar_loyalty.E002"]
    assert messages[0].level == checks.ERROR
    assert "oscar.config.Shop" in messages[0].hint


def test_both_loyalty_apps_listed_after_oscar_report_e002(installed_apps):
    apps = moved_after(django_settings.INSTALLED_APPS, LOYALTY_APP, "oscar.config.Shop")
    installed_apps(moved_after(apps, DASHBOARD_APP, LOYALTY_APP))

    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.E002"]


def test_a_short_app_name_is_recognised_too(installed_apps):
    apps = [
        "oscar_loyalty" if entry == LOYALTY_APP else entry
        for entry in django_settings.INSTALLED_APPS
    ]
    installed_apps(apps)
    assert ids(loyalty_checks.check_installation()) == []

    installed_apps(moved_after(apps, "oscar_loyalty", "oscar.config.Shop"))
    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.E002"]


def test_without_the_basket_middleware_the_loyalty_app_reports_e003(settings):
    settings.MIDDLEWARE = without(settings.MIDDLEWARE, BASKET_MIDDLEWARE)

    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.E003"]


def test_without_the_loyalty_dashboard_app_the_loyalty_app_warns_w004(
    installed_apps,
):
    installed_apps(without(django_settings.INSTALLED_APPS, DASHBOARD_APP))

    messages = loyalty_checks.check_installation()

    assert ids(messages) == ["oscar_loyalty.W004"]
    assert messages[0].level == checks.WARNING


def test_a_dashboard_menu_without_the_loyalty_entry_warns_w005(settings):
    settings.OSCAR_DASHBOARD_NAVIGATION = [
        item
        for item in settings.OSCAR_DASHBOARD_NAVIGATION
        if item is not LOYALTY_DASHBOARD_NAVIGATION
    ]

    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.W005"]


def test_no_dashboard_menu_setting_at_all_warns_w005(settings):
    del settings.OSCAR_DASHBOARD_NAVIGATION

    assert ids(loyalty_checks.check_installation()) == ["oscar_loyalty.W005"]


def test_a_top_level_link_to_the_loyalty_dashboard_is_enough(settings):
    settings.OSCAR_DASHBOARD_NAVIGATION = [
        {"label": "Loyalty", "url_name": "loyalty_dashboard:loyalty-overview"}
    ]

    assert ids(loyalty_checks.check_installation()) == []


def test_several_installation_problems_are_reported_together(settings, installed_apps):
    settings.MIDDLEWARE = without(settings.MIDDLEWARE, BASKET_MIDDLEWARE)
    installed_apps(
        moved_after(
            without(django_settings.INSTALLED_APPS, DASHBOARD_APP),
            LOYALTY_APP,
            "oscar.config.Shop",
        )
    )

    assert ids(loyalty_checks.check_installation()) == [
        "oscar_loyalty.E002",
        "oscar_loyalty.E003",
        "oscar_loyalty.W004",
    ]


# oscar_loyalty: settings --------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", None, 42, ["Members' Club"]])
def test_an_empty_or_non_text_programme_name_reports_e010(settings, name):
    settings.OSCAR_LOYALTY_PROGRAMME_NAME = name

    messages = loyalty_checks.check_settings()

    assert ids(messages) == ["oscar_loyalty.E010"]
    assert "OSCAR_LOYALTY_PROGRAMME_NAME" in messages[0].msg


@pytest.mark.parametrize(
    "name", ["Lotus Club", gettext_lazy("Members' Club")], ids=["text", "lazy"]
)
def test_a_text_or_translatable_programme_name_passes(settings, name):
    settings.OSCAR_LOYALTY_PROGRAMME_NAME = name

    assert loyalty_checks.check_settings() == []


def test_the_default_programme_name_passes(settings):
    del settings.OSCAR_LOYALTY_PROGRAMME_NAME

    assert loyalty_checks.check_settings() == []


# wagtail_members ----------------------------------------------------------------------


def test_without_wagtail_the_members_app_reports_e001(installed_apps):
    installed_apps(without(django_settings.INSTALLED_APPS, "wagtail"))

    assert ids(members_checks.check_installation()) == ["wagtail_members.E001"]


def test_the_members_app_listed_after_wagtail_reports_e002(installed_apps):
    installed_apps(moved_after(django_settings.INSTALLED_APPS, MEMBERS_APP, "wagtail"))

    assert ids(members_checks.check_installation()) == ["wagtail_members.E002"]


def test_without_the_auth_middleware_the_members_app_reports_e003(settings):
    settings.MIDDLEWARE = without(settings.MIDDLEWARE, AUTH_MIDDLEWARE)

    assert ids(members_checks.check_installation()) == ["wagtail_members.E003"]


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_frontend_login_url_warns_w004(settings, value):
    settings.WAGTAIL_FRONTEND_LOGIN_URL = value

    messages = members_checks.check_installation()

    assert ids(messages) == ["wagtail_members.W004"]
    assert messages[0].level == checks.WARNING


def test_no_frontend_login_url_setting_warns_w004(settings):
    del settings.WAGTAIL_FRONTEND_LOGIN_URL

    assert ids(members_checks.check_installation()) == ["wagtail_members.W004"]


def test_a_login_url_that_is_the_join_view_reports_e006(settings):
    settings.LOGIN_URL = "/club/join/"

    messages = members_checks.check_installation()

    assert ids(messages) == ["wagtail_members.E006"]
    assert "go round in circles" in messages[0].msg


def test_a_base_template_no_loader_finds_reports_e005(settings):
    settings.WAGTAIL_MEMBERS_BASE_TEMPLATE = "no/such/base.html"

    messages = members_checks.check_installation()

    assert ids(messages) == ["wagtail_members.E005"]
    assert "no/such/base.html" in messages[0].msg


def test_any_base_template_a_loader_finds_passes(settings):
    settings.WAGTAIL_MEMBERS_BASE_TEMPLATE = "oscar/layout.html"

    assert members_checks.check_installation() == []


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("OSCAR_LOYALTY_EARN_ROUNDING", "down", "oscar_loyalty.E011"),
        ("OSCAR_LOYALTY_EXPIRY_ROUNDING", "week_end", "oscar_loyalty.E011"),
        ("OSCAR_LOYALTY_EXPIRY_MONTHS", 0, "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES", "30", "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_EARN_RATE", "one", "oscar_loyalty.E013"),
        ("OSCAR_LOYALTY_EARN_MINIMUM_ORDER", "-1", "oscar_loyalty.E013"),
        ("OSCAR_LOYALTY_REVERSE_STATUSES", ("Complete",), "oscar_loyalty.E014"),
        ("OSCAR_LOYALTY_REDEEM_POINT_VALUE", "a cent", "oscar_loyalty.E013"),
        ("OSCAR_LOYALTY_REDEEM_MAX_SHARE", "1.5", "oscar_loyalty.E015"),
        ("OSCAR_LOYALTY_REDEEM_STEP", 0, "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_REDEEM_MINIMUM_BALANCE", -1, "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_CONFIRM_AFTER_DAYS", "14", "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_REMINDER_DAYS", (30, 0), "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_REDEEM_POINT_VALUE", "0.00001", "oscar_loyalty.E016"),
        ("OSCAR_LOYALTY_EXPIRY_CHUNK", 0, "oscar_loyalty.E012"),
        ("OSCAR_LOYALTY_TIER_REVIEW_CHUNK", "1000", "oscar_loyalty.E012"),
    ],
)
def test_a_wrong_programme_policy_is_reported_by_id(settings, setting, value, check_id):
    from oscar_loyalty.checks import check_settings

    assert check_id not in {message.id for message in check_settings()}
    setattr(settings, setting, value)

    assert check_id in {message.id for message in check_settings()}


def test_the_database_can_return_ids_of_bulk_inserts():
    from oscar_loyalty.checks import check_database

    assert check_database(databases=["default"]) == []


def test_shopper_urls_not_mounted_warn_w006(settings):
    from oscar_loyalty.checks import check_installation

    assert "oscar_loyalty.W006" not in {m.id for m in check_installation()}
    settings.ROOT_URLCONF = "tests.urls_without_loyalty"

    assert "oscar_loyalty.W006" in {m.id for m in check_installation()}


def test_without_the_loyalty_middleware_the_loyalty_app_warns_w007(settings):
    from oscar_loyalty.checks import check_installation

    assert "oscar_loyalty.W007" not in {m.id for m in check_installation()}
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m != "oscar_loyalty.middleware.LoyaltyMiddleware"
    ]

    assert "oscar_loyalty.W007" in {m.id for m in check_installation()}
