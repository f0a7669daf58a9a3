"""The programme's settings page: the owner changes the policy in the dashboard.

Through Django's test client and Oscar's real permission checks; orders go
through Oscar's real checkout, so a changed earn rate is seen where shoppers
see it. Each change must be validated, audited (before → after) and read back
once per request.
"""

from decimal import Decimal
from html import unescape

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.checks import Error
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from oscar_loyalty import checks
from oscar_loyalty.conf import (
    EDITABLE,
    loyalty_settings,
    settings_scope,
    site_settings,
)
from oscar_loyalty.dashboard.programme import ProgrammeSettingsForm
from oscar_loyalty.models import Member, ProgrammeSetting
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, StaffFactory, UserFactory
from tests.test_dashboard_programme import grant

pytestmark = pytest.mark.django_db

SETTINGS = reverse("loyalty_dashboard:loyalty-settings")
OVERVIEW = reverse("loyalty_dashboard:loyalty-overview")


@pytest.fixture
def owner(client):
    user = grant(StaffFactory(username="olive"), "change_programmesetting")
    client.force_login(user)
    return user


def form_data(**changes):
    """The form as the page shows it now (values in force, and the same as
    the values the page showed), with ``changes``."""
    data = {}
    for name, value in ProgrammeSettingsForm.values_in_force().items():
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            data[f"initial-{name}"] = str(value)
        elif isinstance(value, list):
            data[name] = data[f"initial-{name}"] = value
        elif value is None:
            data[name] = data[f"initial-{name}"] = ""
        else:
            data[name] = data[f"initial-{name}"] = str(value)
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def entries():
    return LogEntry.objects.filter(
        content_type__app_label="oscar_loyalty", content_type__model="programmesetting"
    ).order_by("id")


# Who may ------------------------------------------------------------------------------


def test_staff_without_the_permission_are_refused(client):
    client.force_login(StaffFactory())
    assert client.get(SETTINGS).status_code == 403
    response = client.post(SETTINGS, form_data(EARN_RATE="5"))
    assert response.status_code == 403
    assert not ProgrammeSetting.objects.exists()


def test_visitors_are_sent_to_the_login(client):
    response = client.get(SETTINGS)
    assert response.status_code == 302
    assert "login" in response.url


def test_the_page_shows_every_editable_setting_with_the_value_in_force(client, owner):
    with override_settings(OSCAR_LOYALTY_EARN_RATE="3", OSCAR_LOYALTY_REDEEM_STEP=50):
        response = client.get(SETTINGS)
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.fields) == set(EDITABLE)
    html = unescape(response.content.decode())
    assert 'name="EARN_RATE" value="3"' in html
    assert 'name="REDEEM_STEP" value="50"' in html
    assert "Points per unit of currency" in html
    assert "OSCAR_LOYALTY_EARN_RATE" in html


# Changing the policy ------------------------------------------------------------------


def test_a_changed_earn_rate_is_what_the_next_order_earns_and_is_audited(client, owner):
    CountryFactory()
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))
    response = client.post(SETTINGS, form_data(EARN_RATE="2.5"))
    assert response.status_code == 302
    assert ProgrammeSetting.objects.get(name="EARN_RATE").value == "2.5"

    shopper = Client()
    user = UserFactory()
    shopper.force_login(user)
    place_order(shopper, tea)
    assert Member.objects.get(user=user).pending == 250

    entry = entries().get()
    assert entry.action_flag == ADDITION
    assert entry.user == owner
    assert entry.get_change_message() == (
        "Changed Points per unit of currency (OSCAR_LOYALTY_EARN_RATE): 1 → 2.5"
    )


def test_only_the_settings_changed_on_the_form_are_written(client, owner):
    """Two owners with the page open: each keeps the other's change."""
    first = form_data()
    second = form_data()
    first["EARN_RATE"] = "2"
    client.post(SETTINGS, first)
    second["REDEEM_STEP"] = "200"
    client.post(SETTINGS, second)
    assert dict(ProgrammeSetting.objects.values_list("name", "value")) == {
        "EARN_RATE": "2",
        "REDEEM_STEP": 200,
    }
    assert entries().count() == 2


def test_saving_the_page_unchanged_writes_nothing(client, owner):
    response = client.post(SETTINGS, form_data(), follow=True)
    assert "Nothing was changed." in response.content.decode()
    assert not ProgrammeSetting.objects.exists()
    assert not entries().exists()


def test_each_kind_of_value_is_stored_as_the_django_setting_would_hold_it(
    client, owner
):
    client.post(
        SETTINGS,
        form_data(
            REDEEM_MAX_SHARE="40",
            REMINDER_DAYS="7, 30，15",
            EARN_INCLUDES_TAX="on",
            CONFIRM_AFTER_DAYS="14",
            CONFIRM_STATUSES=["Complete", "Shipped"],
            EXPIRY_ROUNDING="month_end",
        ),
    )
    with settings_scope():
        assert loyalty_settings.REDEEM_MAX_SHARE == "0.4"
        assert loyalty_settings.REMINDER_DAYS == (30, 15, 7)
        assert loyalty_settings.EARN_INCLUDES_TAX is True
        assert loyalty_settings.CONFIRM_AFTER_DAYS == 14
        assert loyalty_settings.CONFIRM_STATUSES == ("Complete", "Shipped")
        assert loyalty_settings.EXPIRY_ROUNDING == "month_end"
    message = entries().get(object_repr="REDEEM_MAX_SHARE").get_change_message()
    assert message.endswith("(OSCAR_LOYALTY_REDEEM_MAX_SHARE): 50 % → 40 %")
    # The shop's own settings are untouched: the system checks read them.
    assert site_settings.REDEEM_MAX_SHARE == "0.5"


def test_a_value_equal_to_the_shops_setting_sets_it_back(client, owner):
    client.post(SETTINGS, form_data(EARN_RATE="2"))
    client.post(SETTINGS, form_data(EARN_RATE="1.00"))
    assert not ProgrammeSetting.objects.exists()
    flags = list(entries().values_list("action_flag", flat=True))
    assert flags == [ADDITION, DELETION]
    assert entries().last().get_change_message() == (
        "Set back to the shop's setting: Points per unit of currency "
        "(OSCAR_LOYALTY_EARN_RATE): 2 → 1"
    )


def test_set_back_returns_one_setting_to_the_shops_setting(client, owner):
    client.post(SETTINGS, form_data(EARN_RATE="2", REDEEM_STEP="50"))
    page = unescape(client.get(SETTINGS).content.decode())
    assert 'name="set_back" value="EARN_RATE"' in page
    assert "The shop's setting is 1." in page

    response = client.post(SETTINGS, {"set_back": "EARN_RATE"}, follow=True)
    assert "is back to the shop's setting" in unescape(response.content.decode())
    assert list(ProgrammeSetting.objects.values_list("name", flat=True)) == [
        "REDEEM_STEP"
    ]
    with settings_scope():
        assert loyalty_settings.EARN_RATE == "1"


def test_a_second_change_is_audited_before_and_after(client, owner):
    client.post(SETTINGS, form_data(EXPIRY_MONTHS="24"))
    client.post(SETTINGS, form_data(EXPIRY_MONTHS="18"))
    assert entries().last().action_flag == CHANGE
    assert entries().last().get_change_message() == (
        "Changed Points expire after (months) (OSCAR_LOYALTY_EXPIRY_MONTHS): 24 → 18"
    )
    row = ProgrammeSetting.objects.get()
    assert (row.value, row.changed_by) == (18, owner)


def test_an_unknown_setting_cannot_be_set_back(client, owner):
    response = client.post(SETTINGS, {"set_back": "CLIENT_IP_HEADER"}, follow=True)
    assert "There is no such setting." in response.content.decode()
    assert not entries().exists()


# Refused values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field, message",
    [
        (
            {"REDEEM_POINT_VALUE": "0.003", "REDEEM_STEP": "5"},
            "REDEEM_STEP",
            "not a whole number of cents",
        ),
        (
            {"CONFIRM_STATUSES": ["Complete"], "REVERSE_STATUSES": ["Complete"]},
            "REVERSE_STATUSES",
            "Complete cannot both confirm and take back points.",
        ),
        ({"EARN_RATE": "-1"}, "EARN_RATE", "greater than or equal to 0"),
        ({"REDEEM_MAX_SHARE": "120"}, "REDEEM_MAX_SHARE", "less than or equal to 100"),
        ({"REMINDER_DAYS": "30, soon"}, "REMINDER_DAYS", "Write whole numbers"),
        ({"EXPIRY_MONTHS": "0"}, "EXPIRY_MONTHS", "greater than or equal to 1"),
        ({"PROGRAMME_NAME": "   "}, "PROGRAMME_NAME", "This field is required."),
        ({"TIER_BASIS": "visits"}, "TIER_BASIS", "Select a valid choice"),
    ],
)
def test_a_bad_value_is_shown_on_its_field_and_nothing_is_saved(
    client, owner, changes, field, message
):
    response = client.post(SETTINGS, form_data(**{"EARN_RATE": "2", **changes}))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors[field])
    assert "Nothing was saved." in response.content.decode()
    assert not ProgrammeSetting.objects.exists()
    assert not entries().exists()


def test_the_form_refuses_what_the_system_check_would_refuse():
    """The form runs the check's rules on the values it would store."""
    form = ProgrammeSettingsForm(data=form_data(EARN_RATE="2"))
    assert form.is_valid(), form.errors
    values = form.setting_values()
    values["EXPIRY_ROUNDING"] = "week_end"
    from oscar_loyalty.dashboard.programme import Proposed

    problems = checks.policy_errors(Proposed(values))
    assert [error.id for error in problems] == ["oscar_loyalty.E011"]


# Reading the settings -----------------------------------------------------------------


def test_a_request_reads_the_dashboards_values_once(client, owner):
    ProgrammeSetting.objects.create(name="EARN_RATE", value="2")
    with settings_scope(), CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            for name in EDITABLE:
                getattr(loyalty_settings, name)
    assert len(queries) == 1


def test_outside_a_request_each_read_sees_the_latest_value():
    assert loyalty_settings.EARN_RATE == "1"
    ProgrammeSetting.objects.create(name="EARN_RATE", value="3")
    assert loyalty_settings.EARN_RATE == "3"


def test_the_installations_own_settings_are_not_read_from_the_dashboard():
    ProgrammeSetting.objects.create(name="EXPIRY_CHUNK", value=5)
    assert loyalty_settings.EXPIRY_CHUNK == 50_000


def test_the_system_checks_read_the_django_settings_only(django_assert_num_queries):
    ProgrammeSetting.objects.create(name="EARN_ROUNDING", value="sideways")
    with django_assert_num_queries(0):
        problems = checks.check_settings()
    assert not [p for p in problems if isinstance(p, Error)]


def test_a_change_is_seen_by_the_rest_of_the_same_request(owner):
    from oscar_loyalty.dashboard.programme import save_settings

    with settings_scope():
        assert loyalty_settings.REDEEM_STEP == 100
        save_settings(owner, {"REDEEM_STEP": 50}, ["REDEEM_STEP"])
        assert loyalty_settings.REDEEM_STEP == 50


# The overview -------------------------------------------------------------------------


def test_the_overview_marks_changed_settings_and_links_to_the_page(client, owner):
    client.post(SETTINGS, form_data(EARN_RATE="2"))
    html = unescape(client.get(OVERVIEW).content.decode())
    row = html[html.index("OSCAR_LOYALTY_EARN_RATE") :]
    row = row[: row.index("</tr>")]
    assert "2" in row and "changed in the dashboard" in row
    assert f'href="{SETTINGS}"' in html


def test_the_overview_has_no_link_for_those_who_may_not_change(client):
    client.force_login(StaffFactory())
    html = client.get(OVERVIEW).content.decode()
    assert SETTINGS not in html


def test_emptying_the_return_window_is_saved_as_none(client, owner, settings):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = 14
    response = client.post(SETTINGS, form_data(CONFIRM_AFTER_DAYS=""), follow=True)
    assert "Saved: Points confirmed after (days)." in unescape(
        response.content.decode()
    )
    with settings_scope():
        assert loyalty_settings.CONFIRM_AFTER_DAYS is None
    assert (
        entries()
        .get()
        .get_change_message()
        .endswith("(OSCAR_LOYALTY_CONFIRM_AFTER_DAYS): 14 → —")
    )
    client.post(SETTINGS, {"set_back": "CONFIRM_AFTER_DAYS"})
    with settings_scope():
        assert loyalty_settings.CONFIRM_AFTER_DAYS == 14


def test_a_shop_setting_outside_the_forms_bounds_does_not_block_other_changes(
    client, owner, settings
):
    settings.OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES = 2880
    settings.OSCAR_LOYALTY_EARN_RATE = "0.0000125"
    response = client.post(SETTINGS, form_data(EXPIRY_MONTHS="24"))
    assert response.status_code == 302, response.context["form"].errors
    assert dict(ProgrammeSetting.objects.values_list("name", "value")) == {
        "EXPIRY_MONTHS": 24
    }
    # Typed in by the owner, the same values are refused.
    response = client.post(SETTINGS, form_data(HOLD_TIMEOUT_MINUTES="2881"))
    assert "HOLD_TIMEOUT_MINUTES" in response.context["form"].errors
