"""The analytics page: KPIs for a period against the one before, on
constructed histories, its charts and tables, downloads on record, member lists
behind segments, and a fixed number of queries however many members."""

from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty import analytics, scoring
from oscar_loyalty.models import (
    ActionAward,
    ExportRecord,
    Lot,
    Member,
    Posting,
)
from oscar_loyalty.services import ledger
from oscar_loyalty.services.ledger import SYSTEM
from tests.factories import StaffFactory
from tests.test_dashboard_members import grant
from tests.test_scoring import history, member, order

pytestmark = pytest.mark.django_db

URL = reverse("loyalty_dashboard:loyalty-analytics")


def owner(*extra):
    client = Client()
    client.force_login(grant(StaffFactory(), "view_analytics", *extra))
    return client


def joined(days_ago, **fields):
    who = member(joined_days=days_ago, **fields)
    return who


def this_month():
    today = timezone.localdate()
    return analytics.Period(today - timedelta(days=29), today)


def test_member_growth_active_retention_and_repeat_rates():
    period = this_month()
    old = [joined(100) for _ in range(4)]  # members before the period
    new = [joined(10) for _ in range(2)]  # joined in it
    order(old[0], "50", days_ago=5)
    order(old[0], "60", days_ago=3)  # a repeat buyer
    order(old[1], "70", days_ago=4)
    ActionAward.objects.create(
        member=old[2],
        action="checkin",
        key="checkin:a",
        points=5,
        created_at=timezone.now() - timedelta(days=2),
    )
    order(new[0], "80", days_ago=2)
    order(old[3], "90", days_ago=60)  # before the period: not active in it

    found = analytics.member_figures(period)

    assert found["members"] == 6
    assert found["new_members"] == 2
    assert found["growth_rate"] == Decimal(2) / 4
    assert found["active_members"] == 4  # three old, one new
    assert found["active_rate"] == Decimal(4) / 6
    assert found["retention_rate"] == Decimal(3) / 4
    assert found["repeat_rate"] == Decimal(1) / 3


def test_points_issued_redeemed_expired_and_breakage():
    who = joined(100)
    ledger.adjust(member=who, points=1000, reason="Welcome", actor=SYSTEM)
    lot = Lot.objects.get(member=who)
    ledger.redeem(member=who, points=300, key="redeem:test", order_number="A1")

    found = analytics.points_figures(this_month())

    assert found == {"issued": 1000, "redeemed": 300, "expired": 0}
    liability = analytics.liability_figures(this_month(), Decimal("0.01"))
    assert liability["points"] == 700
    assert liability["liability"] == Decimal("7.00")
    assert liability["breakage"] == Decimal(0)
    assert lot.points == 1000


def test_comparing_with_the_period_before():
    found = analytics.compare(
        {"issued": 150, "active_rate": Decimal("0.5"), "other_aov": None},
        {"issued": 100, "active_rate": Decimal("0.4"), "other_aov": Decimal("10")},
    )
    assert found["issued"] == (150, 100, Decimal("0.5"))
    assert found["active_rate"] == (Decimal("0.5"), Decimal("0.4"), Decimal("0.1"))
    assert found["other_aov"] == (None, Decimal("10"), None)


def test_the_activation_funnel_of_new_members():
    quick = joined(10)
    order(quick, "20", days_ago=8)  # within 7 days of joining
    slow = joined(20)
    order(slow, "20", days_ago=5)  # 15 days after joining
    ActionAward.objects.create(
        member=slow, action="profile", key="profile:slow", points=10
    )
    joined(15)

    steps = {
        step["step"]: step["members"]
        for step in analytics.activation_funnel(this_month())
    }

    assert steps == {"registered": 3, "signed_in": 0, "profile": 1, "bought": 1}


def test_cohorts_count_members_who_ordered_each_month_since_joining():
    rows = analytics.cohorts(this_month())
    assert len(rows) == analytics.COHORTS
    assert all(row["members"] == 0 for row in rows)
    who = joined(1)
    order(who, "20", days_ago=0)
    rows = analytics.cohorts(this_month())
    assert rows[-1]["members"] == 1
    assert rows[-1]["shares"][0] == 1
    assert rows[-1]["shares"][1] is None  # not yet


def test_the_page_shows_tiles_charts_tables_and_links_to_segment_lists():
    lapsed = joined(450)
    history(lapsed, every=30, last_days_ago=90, orders=12)
    fresh = joined(5)
    order(fresh, "30", days_ago=1)
    scoring.run()

    client = owner("view_member")
    response = client.get(URL)
    assert response.status_code == 200
    html = unescape(response.content.decode())
    for label in (
        "Member growth rate",
        "Active rate",
        "Retention rate",
        "Repeat-purchase rate",
        "Member contribution multiple",
        "Points issued",
        "Breakage estimate",
    ):
        assert label in html
    assert html.count("<svg") >= 3  # segments, churn risk, activation
    assert "kozea.github.io" not in html  # no script from a CDN
    assert 'id="loyalty-table-rfm"' in html and 'id="loyalty-table-cohorts"' in html
    dormant_list = (
        reverse("loyalty_dashboard:loyalty-member-list") + "?activity=cooling"
    )
    assert dormant_list in html


def test_every_table_downloads_on_record():
    client = owner("export_data")
    for table in (
        "kpis",
        "segments",
        "rfm",
        "churn",
        "points",
        "cohorts",
        "funnel",
        "campaigns",
        "liability",
    ):
        response = client.get(URL, {"table": table, "format": "csv"})
        assert response.status_code == 200
        content = b"".join(response.streaming_content).decode("utf-8-sig")
        assert content.splitlines()[0]
    assert ExportRecord.objects.filter(kind="analytics").count() == 9
    assert client.get(URL, {"table": "nope", "format": "csv"}).status_code == 404
    assert owner().get(URL, {"table": "kpis", "format": "csv"}).status_code == 403


def test_a_bad_period_is_refused_and_the_default_shown():
    client = owner()
    response = client.get(URL, {"date_from": "2026-05-01", "date_to": "2026-01-01"})
    assert response.status_code == 200
    assert "The first date is after the last." in unescape(response.content.decode())
    response = client.get(URL, {"date_from": "2020-01-01", "date_to": "2026-01-01"})
    assert "Choose at most two years" in unescape(response.content.decode())


def test_staff_without_the_permission_cannot_see_analytics():
    client = Client()
    client.force_login(grant(StaffFactory(), "view_member"))
    assert client.get(URL).status_code == 403


def test_the_page_costs_the_same_queries_however_many_members():
    client = owner()
    scoring.run()
    scoring.current_run()
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for _ in range(20):
        who = joined(10)
        order(who, "25", days_ago=3)
    Member.objects.update()
    with CaptureQueriesContext(connection) as many:
        client.get(URL)
    assert len(few) == len(many)
    assert Posting.objects.count() >= 0


def test_the_segment_trend_follows_the_runs_of_the_period():
    who = joined(400)
    order(who, "40", days_ago=40)
    now = timezone.now()
    scoring.run(now - timedelta(days=20))
    scoring.run(now)

    rows = analytics.segment_trend(this_month())

    assert [(row["active"], row["cooling"]) for row in rows] == [(1, 0), (0, 1)]
    html = owner().get(URL).content.decode()
    assert 'id="loyalty-table-trend"' in html


@pytest.mark.parametrize(
    "params, message",
    [
        ({"date_from": "0002-01-01"}, "Choose days between 2000-01-01 and today."),
        ({"date_from": "2999-01-01"}, "Choose days between 2000-01-01 and today."),
        ({"date_to": "1999-06-01"}, "Choose days between 2000-01-01 and today."),
        ({"date_from": "2001-01-01", "date_to": "2026-01-01"}, "at most two years"),
    ],
)
def test_one_date_alone_is_checked_too(params, message):
    response = owner().get(URL, params)
    assert response.status_code == 200
    assert message in unescape(response.content.decode())
