"""The member's tier on the Loyalty tab: tier, progress to the next, protection,
grace and the tier history, in a constant number of queries."""

import itertools
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.template.defaultfilters import date as date_filter
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from oscar.templatetags.currency_filters import currency

from oscar_loyalty.models import Lot, Member, OrderActivity, Tier, TierChange
from oscar_loyalty.services import ledger, tiers
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

ACCOUNT = "loyalty:account"

order_numbers = (f"AT{index}" for index in itertools.count(100000))


@pytest.fixture
def ladder():
    """Regular (the entry tier), Silver at 1000 and Gold at 5000."""
    return (
        Tier.objects.create(
            code="regular", name="Regular", rank=1, threshold=0, badge="R"
        ),
        Tier.objects.create(
            code="silver",
            name="Silver",
            rank=2,
            threshold=1000,
            badge="🥈",
            colour="#c0c0c0",
            description="Double points on Tuesdays.",
        ),
        Tier.objects.create(
            code="gold",
            name="Gold",
            rank=3,
            threshold=5000,
            badge="🥇",
            colour="#1a237e",
            description="Free shipping on every order.",
        ),
    )


def shopper_in(tier=None, **fields):
    """A new shopper whose member (in the entry tier) is moved to ``tier``."""
    user = UserFactory()
    member = get_or_create_member(user)
    updates = dict(fields)
    if tier is not None:
        updates["tier"] = tier
    if updates:
        Member.objects.filter(pk=member.pk).update(**updates)
    return user, Member.objects.get(pk=member.pk)


def confirmed_order(member, spend, *, placed_at=None):
    placed_at = placed_at or timezone.now() - timedelta(days=3)
    return OrderActivity.objects.create(
        member=member,
        order_number=next(order_numbers),
        placed_at=placed_at,
        spend=Decimal(spend),
        confirmed_at=placed_at,
    )


def change(member, from_tier, to_tier, *, kind=TierChange.Kind.UPGRADE, **fields):
    return TierChange.objects.create(
        member=member, from_tier=from_tier, to_tier=to_tier, kind=kind, **fields
    )


def account_page(client, user):
    client.force_login(user)
    response = client.get(reverse(ACCOUNT))
    assert response.status_code == 200
    return response, response.content.decode()


def bar(tier):
    """The progress bar's aria values, as numbers."""
    return {
        name: Decimal(value)
        for name, value in re.findall(r'aria-value(min|max|now)="([^"]*)"', tier)
    }


def day(moment):
    """``moment``'s date as the page writes it: in the shop's time zone (from
    16:00 UTC on, already tomorrow in Shanghai)."""
    return date_filter(timezone.localtime(moment), "DATE_FORMAT")


def section(page):
    """The tier section of the page (so other parts cannot satisfy a test)."""
    start = page.index('id="loyalty-tier"')
    return page[start : page.index("</section>", start)]


def test_the_tab_shows_the_members_tier_with_badge_colour_since_and_description(
    client, ladder
):
    since = timezone.now() - timedelta(days=40)
    user, _member = shopper_in(ladder[1], tier_since=since)

    _response, page = account_page(client, user)

    tier = section(page)
    assert "<strong>Silver</strong>" in tier
    assert "🥈" in tier
    assert "Double points on Tuesdays." in tier
    assert f"In this tier since {day(since)}" in tier
    # A light colour gets dark text on the badge, a dark one light text.
    assert "background-color: #c0c0c0; color: #000000;" in tier


def test_a_dark_tier_colour_gets_light_badge_text(client, ladder):
    user, _member = shopper_in(ladder[2])

    tier = section(account_page(client, user)[1])

    assert "background-color: #1a237e; color: #ffffff;" in tier
    assert "Free shipping on every order." in tier


def test_a_colour_that_is_not_a_hex_colour_is_never_written_into_the_page(
    client, ladder
):
    Tier.objects.filter(pk=ladder[1].pk).update(colour="red;x:y")
    user, _member = shopper_in(ladder[1])

    tier = section(account_page(client, user)[1])

    assert "red;x:y" not in tier
    assert "#6c757d" in tier


def test_spend_progress_names_the_amount_in_the_shop_currency_and_the_window(
    client, ladder, settings
):
    settings.OSCAR_LOYALTY_TIER_BASIS = "spend"
    settings.OSCAR_LOYALTY_TIER_WINDOW = "rolling"
    settings.OSCAR_LOYALTY_TIER_WINDOW_MONTHS = 12
    user, member = shopper_in(ladder[1])
    confirmed_order(member, "3000.00")
    confirmed_order(member, "760.00")
    # Neither unconfirmed nor old orders count.
    OrderActivity.objects.create(
        member=member,
        order_number="AT-unconfirmed",
        placed_at=timezone.now() - timedelta(days=1),
        spend=Decimal("900.00"),
    )
    confirmed_order(member, "500.00", placed_at=timezone.now() - timedelta(days=400))

    response, page = account_page(client, user)

    tier = section(page)
    assert f"Spend {currency(Decimal('1240.00'))} more for Gold." in tier
    assert "Only confirmed orders placed within the last 12 months count." in tier
    assert 'role="progressbar"' in tier
    assert "¥1,240.00" in tier  # the shop's currency, CNY
    assert bar(tier) == {"min": 1000, "max": 5000, "now": 3760}
    assert "width: 69%;" in tier
    assert response.context["tier_panel"]["progress"].value == Decimal("3760.00")


def test_points_progress_counts_confirmed_earned_points(client, ladder, settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "points"
    user, member = shopper_in(ladder[1])
    ledger.earn(member=member, key="o1", points=4760, order_number="o1")
    ledger.confirm_lot(lot=Lot.objects.get(order_number="o1"))

    tier = section(account_page(client, user)[1])

    assert "Earn 240 more points for Gold." in tier
    assert bar(tier) == {"min": 1000, "max": 5000, "now": 4760}


def test_points_progress_says_point_for_one(client, ladder, settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "points"
    user, member = shopper_in(ladder[1])
    ledger.earn(member=member, key="o1", points=4999, order_number="o1")
    ledger.confirm_lot(lot=Lot.objects.get(order_number="o1"))

    tier = section(account_page(client, user)[1])

    assert "Earn 1 more point for Gold." in tier


def test_orders_progress_counts_confirmed_orders(client, ladder, settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "orders"
    Tier.objects.filter(pk=ladder[1].pk).update(threshold=2)
    Tier.objects.filter(pk=ladder[2].pk).update(threshold=5)
    user, member = shopper_in(ladder[1])
    for _ in range(3):
        confirmed_order(member, "10.00")

    tier = section(account_page(client, user)[1])

    assert "2 more orders for Gold." in tier
    assert bar(tier) == {"min": 2, "max": 5, "now": 3}


def test_a_calendar_year_window_names_the_date_to_qualify_by(client, ladder, settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "spend"
    settings.OSCAR_LOYALTY_TIER_WINDOW = "calendar_year"
    user, member = shopper_in(ladder[1])
    confirmed_order(member, "1500.00", placed_at=timezone.now() - timedelta(seconds=5))

    response, page = account_page(client, user)

    end = response.context["tier_panel"]["progress"].window_end
    assert timezone.localtime(end).strftime("%m-%d") == "12-31"
    tier = section(page)
    by = day(end)
    assert f"Spend {currency(Decimal('3500.00'))} more for Gold by {by}." in tier
    assert "Only confirmed orders placed this calendar year count." in tier
    assert "months count" not in tier


def test_a_rolling_window_names_its_months(client, ladder, settings):
    settings.OSCAR_LOYALTY_TIER_WINDOW = "rolling"
    settings.OSCAR_LOYALTY_TIER_WINDOW_MONTHS = 6
    user, _member = shopper_in(ladder[0])

    tier = section(account_page(client, user)[1])

    assert f"Spend {currency(Decimal('1000.00'))} more for Silver." in tier
    assert "within the last 6 months count." in tier
    assert bar(tier) == {"min": 0, "max": 1000, "now": 0}


def test_the_top_tier_says_so_and_shows_no_progress_bar(client, ladder):
    user, _member = shopper_in(ladder[2])

    tier = section(account_page(client, user)[1])

    assert "You are in our highest tier." in tier
    assert "progressbar" not in tier
    assert "more for" not in tier


def test_without_a_free_entry_tier_a_new_member_sees_what_the_first_tier_takes(
    client, ladder
):
    Tier.objects.filter(pk=ladder[0].pk).delete()
    user, member = shopper_in()
    assert member.tier is None

    tier = section(account_page(client, user)[1])

    assert "You are not in a tier yet." in tier
    assert f"Spend {currency(Decimal('1000.00'))} more for Silver." in tier
    assert bar(tier) == {"min": 0, "max": 1000, "now": 0}


def test_a_protected_tier_says_until_when(client, ladder):
    until = timezone.now() + timedelta(days=90)
    user, _member = shopper_in(ladder[2], tier_protected_until=until)

    tier = section(account_page(client, user)[1])

    assert f"Your Gold status is protected until {day(until)}." in tier


def test_a_protection_that_has_ended_is_not_mentioned(client, ladder):
    user, _member = shopper_in(
        ladder[2], tier_protected_until=timezone.now() - timedelta(days=1)
    )

    tier = section(account_page(client, user)[1])

    assert "protected until" not in tier


def test_a_member_in_grace_is_told_to_qualify_again_by_its_end(client, ladder):
    until = timezone.now() + timedelta(days=30)
    user, _member = shopper_in(ladder[1], tier_grace_until=until)

    tier = section(account_page(client, user)[1])

    assert f"To keep Silver, qualify again by {day(until)}." in tier


def test_a_member_not_in_grace_sees_no_grace_message(client, ladder):
    user, _member = shopper_in(ladder[1])

    tier = section(account_page(client, user)[1])

    assert "qualify again" not in tier


def test_the_tier_history_shows_kinds_newest_first_without_staff_names_or_notes(
    client, ladder
):
    regular, silver, gold = ladder
    user, member = shopper_in(silver)
    now = timezone.now()
    change(
        member,
        None,
        regular,
        kind=TierChange.Kind.REVIEW,
        reason="internal review note",
        created_at=now - timedelta(days=30),
    )
    change(member, regular, silver, created_at=now - timedelta(days=20))
    staff = StaffFactory(first_name="Sam", last_name="Staffer")
    tiers.set_tier(
        member=member,
        tier=gold,
        reason="Welcome gift for our shop ambassador",
        actor=ledger.Actor.from_user(staff),
        now=now - timedelta(days=10),
    )

    response, page = account_page(client, user)

    history = section(page)[section(page).index('id="loyalty-tier-history"') :]
    rows = history.split("<tr>")[2:]
    assert len(rows) == 3
    assert "Silver → Gold" in rows[0]
    assert "Set by staff" in rows[0]
    assert "Welcome gift for our shop ambassador" not in page  # a note for staff
    assert "Regular → Silver" in rows[1]
    assert "Qualified for a higher tier" in rows[1]
    assert "— → Regular" in rows[2]
    assert "Periodic review" in rows[2]
    assert "internal review note" not in page
    assert "Sam Staffer" not in page
    assert TierChange.objects.get(kind="staff").actor_name == "Sam Staffer"


def test_the_tier_history_shows_the_ten_latest_changes(client, ladder):
    user, member = shopper_in(ladder[0])
    now = timezone.now()
    for day in range(12):
        change(member, ladder[0], ladder[1], created_at=now - timedelta(days=day))

    response, _page = account_page(client, user)

    history = response.context["tier_panel"]["history"]
    assert len(history) == 10
    assert history[0].created_at == now
    assert history[-1].created_at == now - timedelta(days=9)


def test_a_shop_without_tiers_shows_no_tier_section(client):
    user, _member = shopper_in()

    response, page = account_page(client, user)

    assert response.context["tier_panel"] is None
    assert 'id="loyalty-tier"' not in page
    assert "highest tier" not in page


def test_a_shopper_never_sees_another_members_tier_history(client, ladder):
    mine, my_member = shopper_in(ladder[1])
    _theirs, their_member = shopper_in(ladder[2])
    change(my_member, ladder[0], ladder[1])
    change(
        their_member,
        ladder[1],
        ladder[2],
        kind=TierChange.Kind.STAFF,
        reason="Their private reason",
    )

    response, page = account_page(client, mine)

    assert [c.member_id for c in response.context["tier_panel"]["history"]] == [
        my_member.pk
    ]
    assert "Their private reason" not in page
    assert "<strong>Silver</strong>" in section(page)


def test_the_page_runs_as_many_queries_for_eight_tier_changes_as_for_one(
    client, ladder, django_assert_max_num_queries
):
    user, member = shopper_in(ladder[1])
    confirmed_order(member, "1200.00")
    change(member, ladder[0], ladder[1])
    client.force_login(user)
    url = reverse(ACCOUNT)
    client.get(url)  # the session settles on the first request
    with CaptureQueriesContext(connection) as one_change:
        assert client.get(url).status_code == 200

    for index in range(7):
        change(
            member,
            ladder[index % 2],
            ladder[(index + 1) % 3],
            kind=TierChange.Kind.REVIEW,
        )

    with django_assert_max_num_queries(len(one_change.captured_queries)):
        response = client.get(url)
    assert len(response.context["tier_panel"]["history"]) == 8


@pytest.mark.parametrize("basis", ["spend", "points", "orders"])
@pytest.mark.parametrize("window", ["rolling", "calendar_year"])
def test_the_tier_section_renders_in_simplified_chinese(
    client, ladder, settings, basis, window
):
    settings.OSCAR_LOYALTY_TIER_BASIS = basis
    settings.OSCAR_LOYALTY_TIER_WINDOW = window
    user, member = shopper_in(
        ladder[1],
        tier_since=timezone.now() - timedelta(days=5),
        tier_protected_until=timezone.now() + timedelta(days=5),
        tier_grace_until=timezone.now() + timedelta(days=5),
    )
    confirmed_order(member, "1200.00", placed_at=timezone.now() - timedelta(seconds=5))
    change(member, ladder[0], ladder[1], kind=TierChange.Kind.STAFF, reason="gift")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"

    response, page = account_page(client, user)

    assert response.context["LANGUAGE_CODE"] == "zh-hans"
    tier = section(page)
    assert "<strong>Silver</strong>" in tier
    assert "Gold" in tier
    assert 'role="progressbar"' in tier


def test_a_customer_from_before_the_programme_starts_in_the_entry_tier(client, ladder):
    user = UserFactory()
    assert not Member.objects.filter(user=user).exists()

    tier = section(account_page(client, user)[1])

    assert "<strong>Regular</strong>" in tier
    assert f"Spend {currency(Decimal('1000.00'))} more for Silver." in tier
    assert Member.objects.get(user=user).tier == ladder[0]
