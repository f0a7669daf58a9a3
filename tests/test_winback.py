"""Win-back on constructed histories: who a rule picks and how often, what the
picked members get (coupon, extra points, tier protection) and are told, the
control group, the measured returns, the dashboard screens, and the extra
points through Oscar's real basket and checkout."""

from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.test import Client
from django.urls import reverse

from oscar_loyalty import consent, rules_lookup, tasks, winback
from oscar_loyalty.models import (
    CouponDesign,
    Member,
    OrderActivity,
    Tier,
    WinBack,
    WinBackRule,
)
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import add_to_basket
from tests.factories import ProductFactory, StaffFactory
from tests.test_dashboard_members import grant
from tests.test_product_points import basket_of, check_out, earned, page
from tests.test_scoring import NOW, history, member, order

pytestmark = pytest.mark.django_db


def lapsed(**fields):
    """A member who bought monthly for a year, then not for three months:
    churn risk 75 (see test_scoring)."""
    who = member(joined_days=450, **fields)
    history(who, every=30, last_days_ago=90, orders=12)
    return who


def steady():
    who = member(joined_days=400)
    history(who, every=30, last_days_ago=10, orders=12)
    return who


def rule(**fields):
    values = {
        "name": "We miss you",
        "threshold": 70,
        "action": WinBackRule.Action.POINTS,
        "multiplier": Decimal("2"),
        "days": 14,
        "period_days": 180,
        "holdout_percent": 0,
        **fields,
    }
    return WinBackRule.objects.create(**values)


def nightly(at=NOW):
    return tasks.score_members.delay(at.isoformat()).get()


@pytest.fixture
def winback_design(db):
    return CouponDesign.objects.create(
        name="Come back treat",
        purpose=CouponDesign.Purpose.WINBACK,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("10"),
        minimum_spend=Decimal("30"),
        valid_days=30,
    )


def test_a_rule_picks_members_at_its_threshold_once_per_period():
    extra_points = rule()
    gone, staying = lapsed(), steady()

    nightly()

    pick = WinBack.objects.get()
    assert (pick.member, pick.rule, pick.churn_risk, pick.held_out) == (
        gone,
        extra_points,
        75,
        False,
    )
    gone.refresh_from_db()
    assert gone.points_boost == Decimal("2")
    assert gone.points_boost_until == NOW + timedelta(days=14)
    assert gone.points_multiplier(NOW) == Decimal("2")
    assert gone.points_multiplier(NOW + timedelta(days=15)) == Decimal("1")
    staying.refresh_from_db()
    assert staying.points_boost is None

    # Still at risk the next night: not picked again within the period ...
    nightly(NOW + timedelta(days=1))
    assert WinBack.objects.count() == 1
    # ... and a retried task picks no one twice.
    nightly(NOW + timedelta(days=1))
    assert WinBack.objects.count() == 1

    # After the period, picked again.
    WinBackRule.objects.filter(pk=extra_points.pk).update(period_days=2)
    nightly(NOW + timedelta(days=3))
    assert WinBack.objects.filter(member=gone).count() == 2


def test_a_member_picked_by_two_rules_gets_the_first_ones_only(winback_design):
    rule(name="Protect", action=WinBackRule.Action.PROTECT, priority=1)
    rule(
        name="Coupon",
        action=WinBackRule.Action.COUPON,
        coupon_design=winback_design,
    )
    gone = lapsed()
    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=5000)
    Member.objects.filter(pk=gone.pk).update(tier=gold)

    nightly()

    assert list(WinBack.objects.values_list("member", "rule__name")) == [
        (gone.pk, "Protect")
    ]


def test_the_coupon_action_sends_a_win_back_coupon_with_a_message(
    winback_design, django_capture_on_commit_callbacks
):
    send_coupon = rule(action=WinBackRule.Action.COUPON, coupon_design=winback_design)
    gone = lapsed(email="gone@example.com")
    consent.record(gone, {"email": True}, source="account")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        nightly()

    pick = WinBack.objects.get(rule=send_coupon)
    assert pick.coupon.member == gone
    assert pick.coupon.design == winback_design
    assert pick.coupon.key.startswith(f"winback:{send_coupon.pk}:{gone.pk}:")
    [message] = [m for m in mail.outbox if "gone@example.com" in m.to]
    assert message.subject == "We miss you: something for your next visit"
    assert pick.coupon.voucher.code in message.body


def test_tier_protection_keeps_a_later_protection(db):
    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=5000)
    rule(action=WinBackRule.Action.PROTECT, days=30)
    gone, protected = lapsed(), lapsed()
    later = NOW + timedelta(days=90)
    Member.objects.filter(pk__in=[gone.pk, protected.pk]).update(tier=gold)
    Member.objects.filter(pk=protected.pk).update(tier_protected_until=later)

    nightly()

    gone.refresh_from_db()
    protected.refresh_from_db()
    assert gone.tier_protected_until == NOW + timedelta(days=30)
    assert protected.tier_protected_until == later


def test_the_control_group_gets_nothing_and_the_draw_is_fixed():
    rule(holdout_percent=50)
    members = [lapsed() for _ in range(12)]

    nightly()

    picks = {pick.member_id: pick for pick in WinBack.objects.all()}
    assert set(picks) == {who.pk for who in members}
    held = [pk for pk, pick in picks.items() if pick.held_out]
    assert 0 < len(held) < 12
    boosted = set(
        Member.objects.filter(points_boost__isnull=False).values_list("pk", flat=True)
    )
    assert boosted == set(picks) - set(held)
    for pk, pick in picks.items():
        assert pick.held_out == winback.held_out(pick.rule, pk, NOW, 50)


def test_the_report_counts_who_came_back_within_30_60_and_90_days():
    measured = rule(holdout_percent=20)
    picked_at = NOW - timedelta(days=100)

    def pick(held_out, came_back_after):
        who = member()
        WinBack.objects.create(
            rule=measured,
            member=who,
            started_at=picked_at,
            churn_risk=80,
            action=measured.action,
            held_out=held_out,
        )
        if came_back_after is not None:
            order(who, "50", days_ago=100 - came_back_after)

    for days in (10, 20, 45, None):  # treated: 2 within 30, 3 within 60 and 90
        pick(False, days)
    for days in (50, None):  # control: 0 within 30, 1 within 60 and 90
        pick(True, days)
    # An order before the pick does not count; a pick 40 days ago is not yet
    # due for the 60- and 90-day windows.
    early = member()
    order(early, "50", days_ago=120)
    WinBack.objects.create(
        rule=measured,
        member=early,
        started_at=NOW - timedelta(days=40),
        churn_risk=80,
        action=measured.action,
    )

    result = winback.report([measured], now=NOW)[measured.pk]

    treated = result["treated"]
    assert treated["picked"] == 5
    assert [(w["due"], w["back"]) for w in treated["windows"]] == [
        (5, 2),
        (4, 3),
        (4, 3),
    ]
    control = result["control"]
    assert [(w["due"], w["back"], w["rate"]) for w in control["windows"]] == [
        (2, 0, 0.0),
        (2, 1, 50.0),
        (2, 1, 50.0),
    ]
    assert result["uplift"] == [40.0, 25.0, 25.0]


@pytest.fixture
def shopper(client):
    from tests.factories import CountryFactory, UserFactory

    CountryFactory()
    user = UserFactory()
    client.force_login(user)
    return user


def test_extra_points_show_on_the_product_page_and_double_the_order(client, shopper):
    who = get_or_create_member(shopper)
    from django.utils import timezone

    Member.objects.filter(pk=who.pk).update(
        points_boost=Decimal("2"),
        points_boost_until=timezone.now() + timedelta(days=3),
    )
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))

    assert "Earn 200 points" in page(client, tea)
    add_to_basket(client, tea)
    assert rules_lookup.basket_points(basket_of(shopper)) == 200
    assert earned(check_out(client)) == [(200, "base")]


def test_an_ended_boost_earns_the_normal_points(client, shopper):
    who = get_or_create_member(shopper)
    from django.utils import timezone

    Member.objects.filter(pk=who.pk).update(
        points_boost=Decimal("2"),
        points_boost_until=timezone.now() - timedelta(minutes=1),
    )
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))
    add_to_basket(client, tea)

    assert earned(check_out(client)) == [(100, "base")]


# The dashboard -------------------------------------------------------------------


def owner():
    client = Client()
    client.force_login(
        grant(
            StaffFactory(),
            "view_winbackrule",
            "add_winbackrule",
            "change_winbackrule",
            "view_winback",
            "view_member",
            "export_data",
        )
    )
    return client


def test_the_owner_creates_a_rule_on_record_and_sees_its_results(winback_design):
    client = owner()
    response = client.post(
        reverse("loyalty_dashboard:loyalty-winbackrule-create"),
        {
            "name": "Come back",
            "threshold": "65",
            "action": "coupon",
            "coupon_design": winback_design.pk,
            "multiplier": "2",
            "days": "14",
            "period_days": "90",
            "holdout_percent": "10",
            "priority": "0",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    created = WinBackRule.objects.get(name="Come back")
    assert created.threshold == 65
    entry = LogEntry.objects.get(object_id=str(created.pk))
    assert "Created win-back rule" in entry.change_message
    assert "threshold: 65" in entry.change_message

    gone = lapsed(email="gone@example.com")
    nightly()
    html = unescape(
        client.get(
            reverse("loyalty_dashboard:loyalty-winbackrule-list")
        ).content.decode()
    )
    assert "Come back" in html and "Came back within" in html

    picks = reverse("loyalty_dashboard:loyalty-winback-list", args=[created.pk])
    html = client.get(picks).content.decode()
    assert "gone@example.com" in html
    export = client.get(picks, {"format": "csv"})
    lines = b"".join(export.streaming_content).decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Member number,E-mail,Picked,Churn risk")
    assert gone.number in lines[1]


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"action": "coupon"}, "coupon_design", "Choose the coupon to send"),
        ({"holdout_percent": "60"}, "holdout_percent", "At most half"),
        ({"threshold": "0"}, "threshold", "from 1 to 100"),
        ({"multiplier": "1"}, "multiplier", "above 1"),
        ({"days": "0"}, "days", "at least 1 day"),
    ],
)
def test_a_bad_rule_is_refused_with_a_clear_error(change, field, message):
    data = {
        "name": "Bad",
        "threshold": "70",
        "action": "points",
        "multiplier": "2",
        "days": "14",
        "period_days": "90",
        "holdout_percent": "10",
        "priority": "0",
        **change,
    }
    response = owner().post(
        reverse("loyalty_dashboard:loyalty-winbackrule-create"), data
    )
    assert response.status_code == 200
    assert message in unescape(response.content.decode())
    assert field in response.context["form"].errors
    assert not WinBackRule.objects.exists()


def test_staff_without_the_permission_cannot_see_win_back(db):
    client = Client()
    client.force_login(grant(StaffFactory(), "view_member"))
    url = reverse("loyalty_dashboard:loyalty-winbackrule-list")
    assert client.get(url).status_code == 403


def test_a_pick_counts_the_first_order_after_it_not_cancelled_ones():
    measured = rule()
    who = member()
    started = NOW - timedelta(days=50)
    WinBack.objects.create(
        rule=measured, member=who, started_at=started, churn_risk=90, action="points"
    )
    order(who, "10", days_ago=45, cancelled=True)
    order(who, "10", days_ago=20)
    found = WinBack.objects.annotate(returned=winback.returned_at()).get()
    assert found.returned == NOW - timedelta(days=20)
    assert OrderActivity.objects.filter(member=who).count() == 2


def test_a_member_picked_by_one_rule_is_not_picked_by_another_the_next_night(
    winback_design,
):
    rule(name="Points", priority=1, holdout_percent=50)
    rule(name="Coupon", action=WinBackRule.Action.COUPON, coupon_design=winback_design)
    gone = lapsed()

    nightly()
    nightly(NOW + timedelta(days=1))

    assert list(WinBack.objects.values_list("member", "rule__name")) == [
        (gone.pk, "Points")
    ]


def test_tier_protection_picks_only_members_in_a_tier(db):
    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=5000)
    rule(action=WinBackRule.Action.PROTECT, days=30)
    in_tier, tierless = lapsed(), lapsed()
    Member.objects.filter(pk=in_tier.pk).update(tier=gold)

    nightly()

    assert list(WinBack.objects.values_list("member", flat=True)) == [in_tier.pk]
    tierless.refresh_from_db()
    assert tierless.tier_protected_until is None
