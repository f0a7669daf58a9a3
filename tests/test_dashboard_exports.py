"""Downloads of members, issued coupons and a campaign's results from Oscar's
dashboard: the whole filtered list, formulas escaped, on record, only for staff
with ``export_data``."""

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from oscar_loyalty.models import Campaign, CampaignOrder, ExportRecord, Tier
from oscar_loyalty.services import coupons, ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory
from tests.test_dashboard_members import grant

pytestmark = pytest.mark.django_db

MEMBERS = reverse("loyalty_dashboard:loyalty-member-list")
COUPONS = reverse("loyalty_dashboard:loyalty-coupon-list")


def rows_of(response):
    assert response.status_code == 200, response.status_code
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def exporter():
    user = grant(
        StaffFactory(username="ada"),
        "view_member",
        "view_membercoupon",
        "view_campaign",
        "export_data",
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def gold():
    return Tier.objects.create(code="gold", name="Gold", rank=1, threshold=1000)


@pytest.fixture
def members(gold):
    mei = get_or_create_member(
        UserFactory(email="mei@example.com", first_name="=cmd|' /C calc'!A0")
    )
    wei = get_or_create_member(UserFactory(email="wei@example.com", first_name="Wei"))
    mei.tier = gold
    mei.save(update_fields=["tier"])
    ledger.adjust(
        member=mei,
        points=250,
        reason="opening balance",
        actor=ledger.Actor.from_user(StaffFactory()),
    )
    return mei, wei


def test_members_download_with_their_balances_and_the_filters_applied(
    exporter, members, gold
):
    mei, wei = members

    everyone = rows_of(exporter.get(MEMBERS, {"format": "csv"}))
    golden = rows_of(exporter.get(MEMBERS, {"format": "csv", "tier": gold.pk}))

    assert everyone[0][:6] == [
        "Member number", "E-mail", "First name", "Last name", "Tier", "Points to spend",
    ]  # fmt: skip
    assert {row[1] for row in everyone[1:]} == {"mei@example.com", "wei@example.com"}
    assert len(golden) == 2
    row = golden[1]
    assert row[0] == mei.number and row[4] == "Gold" and row[5] == "250"
    assert row[2] == "'=cmd|' /C calc'!A0"  # a name that would run, as text
    records = list(ExportRecord.objects.order_by("created_at", "id"))
    assert [(r.kind, r.rows) for r in records] == [("members", 2), ("members", 1)]
    assert records[1].filters == {"tier": "Gold"}


def test_the_member_list_filters_by_tier(exporter, members, gold):
    html = exporter.get(MEMBERS, {"tier": gold.pk}).content.decode()

    assert "mei@example.com" in html and "wei@example.com" not in html


def test_issued_coupons_download_as_xlsx(exporter, members):
    mei, _wei = members
    from oscar_loyalty.models import CouponDesign

    design = CouponDesign.objects.create(
        name="¥20 off",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20.00"),
        valid_days=30,
    )
    coupons.issue_by_staff(
        member=mei,
        design=design,
        reason="Apology",
        actor=ledger.Actor.from_user(StaffFactory()),
    )

    response = exporter.get(COUPONS, {"format": "xlsx"})

    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["Code", "Member number", "E-mail", "Coupon"]
    assert values[1][1:4] == [mei.number, "mei@example.com", "¥20 off"]
    assert values[1][6] == "Usable" and values[1][7] == "Apology"
    assert ExportRecord.objects.get().kind == "coupons"


def test_a_campaigns_orders_download_with_cancellations_marked(exporter, members):
    campaign = Campaign.objects.create(
        name="Members' day",
        kind=Campaign.Kind.DISCOUNT,
        starts_at=timezone.now(),
        ends_at=timezone.now() + timezone.timedelta(days=1),
        discount_percent=Decimal("10"),
    )
    CampaignOrder.objects.create(
        campaign=campaign,
        order_number="100001",
        user_id=members[0].user_id,
        placed_at=timezone.now(),
        revenue=Decimal("120.00"),
        discount=Decimal("12.00"),
    )
    url = reverse("loyalty_dashboard:loyalty-campaign-report", args=[campaign.pk])

    rows = rows_of(exporter.get(url, {"format": "csv"}))

    assert rows == [
        ["Order number", "Placed", "Member number", "Revenue", "Discount", "Cancelled"],
        ["100001", rows[1][1], members[0].number, "120.00", "12.00", "No"],
    ]
    record = ExportRecord.objects.get()
    assert record.kind == "campaign" and record.filters["campaign"].endswith(
        "Members' day"
    )


@pytest.mark.parametrize("url", [MEMBERS, COUPONS])
def test_staff_without_export_data_may_look_but_not_download(url, members):
    viewer = grant(StaffFactory(), "view_member", "view_membercoupon")
    client = Client()
    client.force_login(viewer)

    assert client.get(url).status_code == 200
    assert "loyalty-export" not in client.get(url).content.decode()
    assert client.get(url, {"format": "csv"}).status_code == 403
    assert not ExportRecord.objects.exists()


LEDGER = reverse("loyalty_dashboard:loyalty-ledger")


def test_the_ledger_lists_and_downloads_postings_with_their_changes(exporter, members):
    mei, wei = members
    ledger.adjust(
        member=mei,
        points=-50,
        reason="=2+3",
        actor=ledger.Actor.from_user(StaffFactory(first_name="Bo", last_name="Ss")),
    )

    html = exporter.get(LEDGER, {"member": mei.number}).content.decode()
    rows = rows_of(exporter.get(LEDGER, {"member": "MEI@example.com", "format": "csv"}))

    assert "2 postings" in html
    assert rows[0][:7] == [
        "When", "Posting", "Kind", "Member number", "E-mail", "Points to spend",
        "Pending points",
    ]  # fmt: skip
    assert [(row[5], row[6], row[9]) for row in rows[1:]] == [
        ("-50", "0", "'=2+3"),
        ("250", "0", "opening balance"),
    ]
    assert (
        rows_of(exporter.get(LEDGER, {"member": wei.number, "format": "csv"}))[1:] == []
    )
    assert [r.kind for r in ExportRecord.objects.all()] == ["ledger", "ledger"]


def test_a_ledger_search_with_dates_the_wrong_way_round_says_so(exporter):
    html = exporter.get(LEDGER, {"date_from": "2026-02-02", "date_to": "2026-02-01"})

    assert "The first date is after the last." in html.content.decode()


def test_a_name_with_a_control_character_does_not_fail_the_xlsx_download(exporter):
    get_or_create_member(UserFactory(email="odd@example.com", first_name="Li\x0bNa"))

    response = exporter.get(MEMBERS, {"format": "xlsx"})

    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert [row[2].value for row in sheet.iter_rows(min_row=2)] == ["LiNa"]
    assert ExportRecord.objects.get().rows == 1
