"""The staff audit log in Oscar's dashboard: every staff change to the programme
(who, when, what, before → after), filterable, and downloadable as CSV or XLSX
with spreadsheet formulas escaped and each download on record."""

import csv
import io
import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from oscar_loyalty.exports import safe_cell
from oscar_loyalty.models import ExportRecord, Tier
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory
from tests.test_dashboard_members import adjust_url, form_key, grant

pytestmark = pytest.mark.django_db

AUDIT = reverse("loyalty_dashboard:loyalty-audit-log")


def html_of(response):
    assert response.status_code == 200, response.status_code
    return unescape(response.content.decode())


@pytest.fixture
def owner():
    """Staff who adjust points and set tiers, and read and download the log."""
    user = grant(
        StaffFactory(username="ada", first_name="Ada", last_name="Owner"),
        "view_member",
        "adjust_points",
        "set_tier",
        "view_audit_log",
        "export_data",
    )
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def member():
    user = UserFactory(email="mei@example.com", first_name="=HYPERLINK(1)")
    return get_or_create_member(user)


def adjust(client, member, points, reason):
    response = client.post(
        adjust_url(member),
        {"points": str(points), "reason": reason, "key": form_key(client, member)},
    )
    assert response.status_code == 302


def rows_of(response):
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_staff_actions_on_members_are_in_the_log_with_who_and_why(owner, member):
    gold = Tier.objects.create(code="gold", name="Gold", rank=1, threshold=1000)
    adjust(owner, member, 500, "Late delivery")
    owner.post(
        reverse("loyalty_dashboard:loyalty-member-set-tier", kwargs={"pk": member.pk}),
        {"tier": gold.pk, "reason": "VIP customer"},
    )

    html = html_of(owner.get(AUDIT))

    assert "Adjusted points by +500: Late delivery" in html
    assert "Set tier to Gold: VIP customer" in html
    assert "2 staff actions" in html
    assert html.count(">ada<") == 2


def test_the_log_filters_by_staff_action_kind_dates_and_words(owner, member):
    other = StaffFactory(username="bob")
    adjust(owner, member, 100, "Goodwill")
    LogEntry.objects.log_actions(
        other.pk, [member], CHANGE, change_message="Changed phone", single_object=True
    )
    tier = Tier.objects.create(code="silver", name="Silver", rank=1, threshold=10)
    LogEntry.objects.log_actions(
        other.pk, [tier], CHANGE, change_message="threshold: 5 → 10", single_object=True
    )
    today = timezone.localdate()

    def listed(**query):
        html = html_of(owner.get(AUDIT, query))
        return re.findall(r'class="loyalty-audit-change">([^<]*)<', html)

    assert len(listed()) == 3
    assert listed(staff="bob") == ["threshold: 5 → 10", "Changed phone"]
    tier_type = str(ContentType.objects.get_for_model(Tier).pk)
    assert listed(kind=tier_type) == ["threshold: 5 → 10"]
    assert listed(q="goodwill") == ["Adjusted points by +100: Goodwill"]
    assert len(listed(date_from=today, date_to=today)) == 3
    assert listed(date_from=today + timedelta(days=1)) == []
    bad = html_of(
        owner.get(AUDIT, {"date_from": today, "date_to": today - timedelta(1)})
    )
    assert "The first date is after the last." in bad


def test_the_log_shows_only_the_programmes_records(owner):
    LogEntry.objects.log_actions(
        owner.user.pk, [owner.user], CHANGE, change_message="Changed password",
        single_object=True,
    )  # fmt: skip

    assert "Changed password" not in html_of(owner.get(AUDIT))


def test_a_download_escapes_formulas_and_is_on_record(owner, member):
    adjust(owner, member, 100, "=cmd|' /C calc'!A0")

    response = owner.get(AUDIT, {"q": "cmd", "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="loyalty-audit-log-'
    )
    header, row = rows_of(response)
    assert header == ["When", "Staff user", "Action", "Record", "Object", "Object id",
                      "Change"]  # fmt: skip
    assert row[1:4] == ["ada", "Changed", "Member"]
    assert row[6] == "Adjusted points by +100: =cmd|' /C calc'!A0"  # not at the start
    record = ExportRecord.objects.get()
    assert (record.user, record.user_name, record.kind, record.format, record.rows) == (
        owner.user, "ada", "audit_log", "csv", 1,
    )  # fmt: skip
    assert record.filters == {"q": "cmd"}
    assert "ada" in html_of(owner.get(AUDIT)).split('id="loyalty-recent-exports"')[1]


def test_an_xlsx_download_holds_text_not_formulas(owner, member):
    LogEntry.objects.log_actions(
        owner.user.pk, [member], CHANGE, change_message="=1+2", single_object=True
    )

    response = owner.get(AUDIT, {"format": "xlsx"})

    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[1][6] == "'=1+2"
    assert sheet.cell(row=2, column=7).data_type == "s"
    assert ExportRecord.objects.get().format == "xlsx"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        (-2, -2),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_escaped(value, written):
    assert safe_cell(value) == written


def test_staff_without_the_permissions_cannot_read_or_download(owner):
    reader = grant(StaffFactory(), "view_audit_log")
    client = Client()
    client.force_login(reader)
    assert client.get(AUDIT).status_code == 200
    assert client.get(AUDIT, {"format": "csv"}).status_code == 403
    assert "loyalty-audit-export" not in html_of(client.get(AUDIT))
    assert not ExportRecord.objects.exists()

    nobody = Client()
    nobody.force_login(StaffFactory())
    assert nobody.get(AUDIT).status_code == 403
