"""Tiers: qualifying activity, upgrades, the periodic review, staff changes, groups.

Services are called with a fixed ``NOW`` where the boundaries matter; the end-to-end
tests place real orders through Oscar's checkout and move them through its statuses
and payment events, as the shop does.
"""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from oscar.apps.order.signals import order_placed
from oscar.core.loading import get_class, get_model

from oscar_loyalty import rules, tasks
from oscar_loyalty.exceptions import TierProtectionInPast, TierReasonRequired
from oscar_loyalty.models import Lot, Member, OrderActivity, Tier, TierChange
from oscar_loyalty.services import ledger, tiers
from oscar_loyalty.services.members import get_or_create_member
from oscar_loyalty.signals import tier_changed
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

EventHandler = get_class("order.processing", "EventHandler")
Benefit = get_model("offer", "Benefit")
Condition = get_model("offer", "Condition")
ConditionalOffer = get_model("offer", "ConditionalOffer")
Line = get_model("order", "Line")
Order = get_model("order", "Order")
PaymentEventType = get_model("order", "PaymentEventType")
Range = get_model("offer", "Range")

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
MICROSECOND = timedelta(microseconds=1)

order_numbers = (f"T{index}" for index in itertools.count(100000))


@pytest.fixture
def ladder():
    """Regular (the entry tier: it asks for nothing), Silver at 1000, Gold at 5000."""
    return (
        Tier.objects.create(code="regular", name="Regular", rank=1, threshold=0),
        Tier.objects.create(code="silver", name="Silver", rank=2, threshold=1000),
        Tier.objects.create(code="gold", name="Gold", rank=3, threshold=5000),
    )


@pytest.fixture
def announced():
    """The tier_changed signals sent, as (member id, old tier, new tier, change)."""
    received = []

    def receiver(sender, member, old_tier, new_tier, change, **kwargs):
        received.append((member.pk, old_tier, new_tier, change))

    tier_changed.connect(receiver, weak=False, dispatch_uid="test_tiers.announced")
    yield received
    tier_changed.disconnect(dispatch_uid="test_tiers.announced")


def member_in(tier=None, **fields):
    """A new member (in the entry tier if there is one), moved to ``tier``."""
    member = get_or_create_member(UserFactory())
    if tier is not None or fields:
        updates = {"tier": tier, **fields} if tier is not None else fields
        Member.objects.filter(pk=member.pk).update(**updates)
    return Member.objects.get(pk=member.pk)


def activity(member, spend, *, placed_at=NOW - timedelta(days=1), confirmed=True, **f):
    """An order's activity, confirmed when it was placed unless ``confirmed=False``."""
    return OrderActivity.objects.create(
        member=member,
        order_number=next(order_numbers),
        placed_at=placed_at,
        spend=Decimal(spend),
        confirmed_at=placed_at if confirmed else None,
        **f,
    )


def value_of(member, now=NOW):
    return tiers.qualifying_value(member, now=now)


def tier_groups(user):
    return set(
        user.groups.filter(name__startswith="loyalty:").values_list("name", flat=True)
    )


def tier_of(member):
    return Member.objects.get(pk=member.pk).tier


# tier_for and decide at their boundaries -------------------------------------------


def unsaved_ladder():
    return [
        Tier(code="regular", rank=1, threshold=Decimal("0")),
        Tier(code="silver", rank=2, threshold=Decimal("1000.00")),
        Tier(code="gold", rank=3, threshold=Decimal("5000.00")),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0"), "regular"),
        (Decimal("999.99"), "regular"),
        (Decimal("1000.00"), "silver"),
        (Decimal("4999.99"), "silver"),
        (Decimal("5000"), "gold"),
        (Decimal("123456.78"), "gold"),
    ],
)
def test_a_value_exactly_at_a_threshold_reaches_the_tier_a_cent_below_does_not(
    value, expected
):
    assert tiers.tier_for(value, unsaved_ladder()).code == expected


def test_without_a_free_lowest_tier_no_value_below_it_reaches_any_tier():
    ladder = unsaved_ladder()[1:]

    assert tiers.tier_for(Decimal("999.99"), ladder) is None
    assert tiers.tier_for(Decimal("1000"), ladder).code == "silver"
    assert tiers.entry_tier(ladder) is None
    assert tiers.entry_tier(unsaved_ladder()).code == "regular"
    assert tiers.entry_tier([]) is None


def decide(tier, target, *, grace_days=30, protected_until=None, grace_until=None):
    by_code = {tier.code: tier for tier in unsaved_ladder()}
    member = Member(
        tier=by_code.get(tier),
        tier_protected_until=protected_until,
        tier_grace_until=grace_until,
    )
    action, result = tiers.decide(
        member,
        by_code.get(target),
        now=NOW,
        grace=timedelta(days=grace_days),
    )
    return action, (result.code if result else None)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tier": "silver", "target": "gold"}, ("up", "gold")),
        ({"tier": None, "target": "regular"}, ("up", "regular")),
        ({"tier": "silver", "target": "silver"}, ("keep", "silver")),
        ({"tier": None, "target": None}, ("keep", None)),
        (
            {"tier": "silver", "target": "silver", "grace_until": NOW + timedelta(1)},
            ("clear", "silver"),
        ),
        (
            {"tier": "gold", "target": "gold", "protected_until": NOW - MICROSECOND},
            ("keep", "gold"),
        ),
        # Protection until a moment after now keeps the tier; ending now, it no
        # longer does (grace starts, or the downgrade without grace days).
        (
            {"tier": "gold", "target": "silver", "protected_until": NOW + MICROSECOND},
            ("protected", "gold"),
        ),
        (
            {
                "tier": "gold",
                "target": "silver",
                "protected_until": NOW + MICROSECOND,
                "grace_until": NOW - timedelta(days=5),
            },
            ("protected", "gold"),
        ),
        (
            {"tier": "gold", "target": "silver", "protected_until": NOW},
            ("grace", "gold"),
        ),
        (
            {
                "tier": "gold",
                "target": "silver",
                "protected_until": NOW,
                "grace_days": 0,
            },
            ("down", "silver"),
        ),
        ({"tier": "gold", "target": "silver"}, ("grace", "gold")),
        ({"tier": "gold", "target": "silver", "grace_days": 0}, ("down", "silver")),
        ({"tier": "silver", "target": None, "grace_days": 0}, ("down", None)),
        (
            {"tier": "gold", "target": "regular", "grace_until": NOW + MICROSECOND},
            ("keep", "gold"),
        ),
        (
            {"tier": "gold", "target": "regular", "grace_until": NOW},
            ("down", "regular"),
        ),
        (
            {"tier": "gold", "target": "regular", "grace_until": NOW - timedelta(9)},
            ("down", "regular"),
        ),
        # A grace already running ends on its date even with no grace days now.
        (
            {
                "tier": "gold",
                "target": "regular",
                "grace_until": NOW + MICROSECOND,
                "grace_days": 0,
            },
            ("keep", "gold"),
        ),
    ],
)
def test_decide_at_every_boundary(kwargs, expected):
    assert decide(**kwargs) == expected


# Qualifying values -----------------------------------------------------------------


def test_spend_counts_confirmed_uncancelled_activity_in_the_window_less_refunds():
    member = member_in()
    activity(member, "100.00")
    activity(member, "800.00", refunded=Decimal("50.00"))
    activity(member, "200.00", confirmed=False)
    activity(member, "400.00", cancelled_at=NOW - timedelta(hours=1))
    activity(member, "1600.00", placed_at=NOW - timedelta(days=400))
    activity(member, "3200.00", placed_at=NOW + timedelta(hours=1))
    other = member_in()
    activity(other, "6400.00")

    assert value_of(member) == Decimal("850.00")
    assert tiers.qualifying_values(Member.objects.all(), now=NOW) == {
        member.pk: Decimal("850.00"),
        other.pk: Decimal("6400.00"),
    }
    assert value_of(member_in()) == 0


def test_spend_adding_up_to_exactly_a_threshold_reaches_it(ladder):
    member = member_in()
    for spend in ("333.33", "333.33", "333.34"):
        activity(member, spend)

    assert value_of(member) == Decimal("1000.00")
    assert tiers.upgrade(member, now=NOW).to_tier == ladder[1]


def test_spend_a_cent_short_of_a_threshold_does_not_reach_it(ladder):
    member = member_in()
    for spend in ("333.33", "333.33", "333.33"):
        activity(member, spend)

    assert value_of(member) == Decimal("999.99")
    assert tiers.upgrade(member, now=NOW) is None
    assert tier_of(member) == ladder[0]


def test_orders_basis_counts_orders_not_refunded_in_full(settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "orders"
    member = member_in()
    activity(member, "100.00")
    activity(member, "800.00", refunded=Decimal("799.99"))
    activity(member, "300.00", refunded=Decimal("300.00"))
    activity(member, "200.00", confirmed=False)
    activity(member, "400.00", cancelled_at=NOW - timedelta(hours=1))
    activity(member, "1600.00", placed_at=NOW - timedelta(days=400))

    assert value_of(member) == 2


def test_orders_basis_counts_an_order_paid_for_entirely_with_points(settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "orders"
    member = member_in()
    activity(member, "0.00")

    assert value_of(member) == 1


def confirmed_lot(member, points, *, at, key):
    ledger.earn(member=member, key=key, points=points, order_number=key, now=at)
    lot = Lot.objects.get(entries__posting__key=key)
    ledger.confirm_lot(lot=lot, now=at)
    return lot


def test_points_basis_counts_confirmed_earned_points_in_the_window_less_reversals(
    settings,
):
    settings.OSCAR_LOYALTY_TIER_BASIS = "points"
    member = member_in()
    day = timedelta(days=1)
    confirmed_lot(member, 100, at=NOW - day, key="kept")
    refunded = confirmed_lot(member, 70, at=NOW - day, key="refunded")
    ledger.reverse_lot(lot=refunded, points=20, key="refund", now=NOW - day)
    cancelled = confirmed_lot(member, 40, at=NOW - day, key="cancelled")
    ledger.reverse_lot(lot=cancelled, points=40, key="cancel", now=NOW - day)
    ledger.earn(member=member, key="pending", points=50, now=NOW - day)
    confirmed_lot(member, 500, at=NOW - timedelta(days=400), key="old")
    confirmed_lot(member, 800, at=NOW + day, key="later")
    ledger.adjust(
        member=member, points=900, reason="goodwill", actor=ledger.SYSTEM, now=NOW - day
    )

    assert value_of(member) == 150


@pytest.mark.parametrize(
    ("months", "start"),
    [
        (12, datetime(2024, 6, 15, 12, tzinfo=UTC)),
        (6, datetime(2024, 12, 15, 12, tzinfo=UTC)),
    ],
)
def test_rolling_window_counts_from_its_first_microsecond(settings, months, start):
    settings.OSCAR_LOYALTY_TIER_WINDOW = "rolling"
    settings.OSCAR_LOYALTY_TIER_WINDOW_MONTHS = months
    assert rules.tier_window_start(NOW) == start
    member = member_in()
    activity(member, "1.00", placed_at=start)
    activity(member, "10.00", placed_at=start - MICROSECOND)
    activity(member, "100.00", placed_at=NOW)

    assert value_of(member) == Decimal("101.00")


def test_rolling_window_edges_hold_for_points_too(settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "points"
    start = rules.add_months(NOW, -12)
    member = member_in()
    confirmed_lot(member, 1, at=start, key="edge")
    confirmed_lot(member, 10, at=start - MICROSECOND, key="before")

    assert value_of(member) == 1


@pytest.fixture
def calendar_year(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    settings.OSCAR_LOYALTY_TIER_WINDOW = "calendar_year"


def test_calendar_year_starts_at_local_midnight_while_utc_is_still_last_year(
    calendar_year,
):
    now = datetime(2025, 3, 1, 12, tzinfo=SHANGHAI).astimezone(UTC)  # as the clock
    member = member_in()
    # 00:30 on 1 January in Shanghai: still 31 December 2024 in UTC.
    after_midnight = datetime(2025, 1, 1, 0, 30, tzinfo=SHANGHAI)
    assert after_midnight.astimezone(UTC).year == 2024
    activity(member, "1.00", placed_at=after_midnight)
    activity(member, "10.00", placed_at=datetime(2025, 1, 1, tzinfo=SHANGHAI))
    before = datetime(2025, 1, 1, tzinfo=SHANGHAI) - MICROSECOND
    activity(member, "100.00", placed_at=before)

    assert rules.tier_window_start(now) == datetime(2025, 1, 1, tzinfo=SHANGHAI)
    assert value_of(member, now) == Decimal("11.00")


def test_calendar_year_follows_the_shop_year_when_now_is_last_year_in_utc(
    calendar_year,
):
    # 02:00 on 1 January 2026 in Shanghai is 18:00 on 31 December 2025 in UTC.
    now = datetime(2026, 1, 1, 2, tzinfo=SHANGHAI).astimezone(UTC)
    assert now.year == 2025
    member = member_in()
    # 31 December 2025 in UTC for both, but only the first is 2026 in Shanghai.
    activity(member, "1.00", placed_at=datetime(2025, 12, 31, 17, tzinfo=UTC))
    activity(member, "10.00", placed_at=datetime(2025, 12, 31, 15, tzinfo=UTC))

    assert value_of(member, now) == Decimal("1.00")
    progress = tiers.progress(member, now=now)
    assert progress.window_start == datetime(2026, 1, 1, tzinfo=SHANGHAI)
    assert progress.window_end == datetime(
        2026, 12, 31, 23, 59, 59, 999999, tzinfo=SHANGHAI
    )


def test_with_a_return_window_unconfirmed_orders_past_it_count(settings):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = 14
    member = member_in()
    edge = NOW - timedelta(days=14)
    activity(member, "1.00", placed_at=edge, confirmed=False)
    activity(member, "10.00", placed_at=edge + MICROSECOND, confirmed=False)
    activity(member, "100.00", placed_at=NOW - timedelta(days=20), confirmed=False)
    activity(
        member,
        "1000.00",
        placed_at=NOW - timedelta(days=20),
        confirmed=False,
        cancelled_at=NOW - timedelta(days=19),
    )

    assert value_of(member) == Decimal("101.00")
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = None
    assert value_of(member) == 0


def test_progress_shows_the_next_tier_and_what_it_takes(ladder):
    member = member_in()
    activity(member, "640.50")

    progress = tiers.progress(member, now=NOW)

    assert (progress.tier, progress.value) == (ladder[0], Decimal("640.50"))
    assert (progress.next_tier, progress.needed) == (ladder[1], Decimal("359.50"))
    assert (progress.basis, progress.window_end) == ("spend", None)
    assert progress.window_start == rules.add_months(NOW, -12)
    top = member_in(ladder[2])
    assert tiers.progress(top, now=NOW).next_tier is None


# Upgrades --------------------------------------------------------------------------


def test_confirming_an_order_that_crosses_a_threshold_upgrades_at_once(
    ladder, announced, django_capture_on_commit_callbacks
):
    regular, silver, _ = ladder
    member = member_in()
    activity(member, "400.00")
    tiers.record_order(
        member_id=member.pk,
        order_number="A-1",
        placed_at=NOW - timedelta(hours=2),
        spend=Decimal("600.00"),
    )

    with django_capture_on_commit_callbacks(execute=True):
        change = tiers.confirm_order(order_number="A-1", now=NOW)
        assert announced == []  # not before the commit

    member.refresh_from_db()
    assert (member.tier, member.tier_since, member.tier_grace_until) == (
        silver,
        NOW,
        None,
    )
    assert OrderActivity.objects.get(order_number="A-1").confirmed_at == NOW
    assert TierChange.objects.get() == change
    assert (change.kind, change.from_tier, change.to_tier) == (
        "upgrade",
        regular,
        silver,
    )
    assert (change.qualifying_value, change.created_at) == (Decimal("1000.00"), NOW)
    assert announced == [(member.pk, regular, silver, change)]
    assert tier_groups(member.user) == {"loyalty:regular", "loyalty:silver"}


def test_a_gold_member_is_in_every_group_up_to_gold(ladder):
    member = member_in()
    activity(member, "5000.00")

    tiers.upgrade(member, now=NOW)

    assert tier_of(member) == ladder[2]
    assert tier_groups(member.user) == {
        "loyalty:regular",
        "loyalty:silver",
        "loyalty:gold",
    }


def test_a_confirmed_order_below_the_next_threshold_changes_nothing(ladder, announced):
    member = member_in()
    tiers.record_order(
        member_id=member.pk, order_number="A-2", placed_at=NOW, spend=Decimal("999.99")
    )

    assert tiers.confirm_order(order_number="A-2", now=NOW) is None

    assert tier_of(member) == ladder[0]
    assert not TierChange.objects.exists()


def test_upgrade_never_moves_a_member_down(ladder, announced):
    gold = ladder[2]
    member = member_in(gold)
    activity(member, "1000.00")

    assert tiers.upgrade(member, now=NOW) is None

    assert tier_of(member) == gold
    assert not TierChange.objects.exists()
    assert announced == []


def test_upgrade_ends_a_grace_when_the_member_qualifies_again(ladder):
    silver = ladder[1]
    member = member_in(silver, tier_grace_until=NOW + timedelta(days=3))
    activity(member, "1000.00")

    assert tiers.upgrade(member, now=NOW) is None

    member.refresh_from_db()
    assert (member.tier, member.tier_grace_until) == (silver, None)


def test_a_cancelled_order_is_not_confirmed_and_does_not_upgrade(ladder):
    member = member_in()
    tiers.record_order(
        member_id=member.pk, order_number="A-3", placed_at=NOW, spend=Decimal("9000")
    )
    tiers.cancel_order(order_number="A-3", now=NOW)

    assert tiers.confirm_order(order_number="A-3", now=NOW) is None

    assert OrderActivity.objects.get(order_number="A-3").confirmed_at is None
    assert tier_of(member) == ladder[0]


def test_an_order_is_recorded_once_and_never_with_negative_spend():
    member = member_in()
    tiers.record_order(
        member_id=member.pk, order_number="A-4", placed_at=NOW, spend=Decimal("10")
    )
    tiers.record_order(
        member_id=member.pk, order_number="A-4", placed_at=NOW, spend=Decimal("99")
    )
    tiers.record_order(
        member_id=member.pk, order_number="A-5", placed_at=NOW, spend=Decimal("-5")
    )

    assert dict(OrderActivity.objects.values_list("order_number", "spend")) == {
        "A-4": Decimal("10"),
        "A-5": Decimal("0"),
    }


# Staff setting a tier --------------------------------------------------------------


@pytest.fixture
def staff():
    return ledger.Actor.from_user(StaffFactory(first_name="Ada", last_name="Wu"))


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_setting_a_tier_needs_a_reason_and_writes_nothing_without_one(
    ladder, staff, reason
):
    member = member_in()

    with pytest.raises(TierReasonRequired):
        tiers.set_tier(
            member=member,
            tier=ladder[2],
            reason=reason,
            actor=staff,
            protect_until=NOW + timedelta(days=9),
            now=NOW,
        )

    member.refresh_from_db()
    assert (member.tier, member.tier_protected_until) == (ladder[0], None)
    assert not TierChange.objects.exists()
    assert tier_groups(member.user) == {"loyalty:regular"}


@pytest.mark.parametrize("protect_until", [NOW, NOW - timedelta(days=1)])
def test_protection_ending_now_or_earlier_is_refused(ladder, staff, protect_until):
    member = member_in()

    with pytest.raises(TierProtectionInPast):
        tiers.set_tier(
            member=member,
            tier=ladder[2],
            reason="VIP",
            actor=staff,
            protect_until=protect_until,
            now=NOW,
        )

    member.refresh_from_db()
    assert (member.tier, member.tier_protected_until) == (ladder[0], None)
    assert not TierChange.objects.exists()


def test_staff_set_a_protected_tier_with_history_groups_and_the_signal(
    ladder, staff, announced, django_capture_on_commit_callbacks
):
    regular, _, gold = ladder
    member = member_in()
    activity(member, "12.50")
    until = NOW + timedelta(days=90)

    with django_capture_on_commit_callbacks(execute=True):
        change = tiers.set_tier(
            member=member,
            tier=gold,
            reason="  Press partner  ",
            actor=staff,
            protect_until=until,
            now=NOW,
        )
        assert announced == []

    member.refresh_from_db()
    assert (member.tier, member.tier_since, member.tier_protected_until) == (
        gold,
        NOW,
        until,
    )
    change = TierChange.objects.get(pk=change.pk)
    assert (change.kind, change.from_tier, change.to_tier) == ("staff", regular, gold)
    assert (change.reason, change.actor_id, change.actor_name) == (
        "Press partner",
        staff.id,
        "Ada Wu",
    )
    assert (change.protected_until, change.qualifying_value) == (
        until,
        Decimal("12.50"),
    )
    assert tier_groups(member.user) == {
        "loyalty:regular",
        "loyalty:silver",
        "loyalty:gold",
    }
    assert announced == [(member.pk, regular, gold, change)]

    tiers.set_tier(member=member, tier=None, reason="Left", actor=staff, now=NOW)
    member.refresh_from_db()
    assert (member.tier, member.tier_protected_until) == (None, None)
    assert tier_groups(member.user) == set()


def test_new_protection_for_the_same_tier_is_recorded_too(
    ladder, staff, announced, django_capture_on_commit_callbacks
):
    silver = ladder[1]
    member = member_in(silver, tier_since=NOW - timedelta(days=40))
    later = NOW + timedelta(days=30)

    with django_capture_on_commit_callbacks(execute=True):
        change = tiers.set_tier(
            member=member,
            tier=silver,
            reason="Complaint",
            actor=staff,
            protect_until=later,
            now=NOW,
        )

    member.refresh_from_db()
    assert (member.tier, member.tier_since, member.tier_protected_until) == (
        silver,
        NOW - timedelta(days=40),
        later,
    )
    row = TierChange.objects.get()
    assert row == change
    assert (row.from_tier, row.to_tier, row.kind, row.protected_until) == (
        silver,
        silver,
        "staff",
        later,
    )
    assert (row.actor_id, row.reason) == (staff.id, "Complaint")
    assert announced == []


def test_protecting_a_member_in_grace_ends_the_grace(ladder, staff):
    silver = ladder[1]
    member = member_in(silver, tier_grace_until=NOW + timedelta(days=3))

    tiers.set_tier(
        member=member,
        tier=silver,
        reason="Loyal customer",
        actor=staff,
        protect_until=NOW + timedelta(days=90),
        now=NOW,
    )

    member.refresh_from_db()
    assert member.tier_grace_until is None
    assert member.tier_protected_until == NOW + timedelta(days=90)


# The periodic review ---------------------------------------------------------------


def snapshot():
    return (
        sorted(
            Member.objects.values_list(
                "pk", "tier", "tier_since", "tier_grace_until", "tier_protected_until"
            )
        ),
        TierChange.objects.count(),
    )


def test_review_downgrades_only_after_the_grace_period(
    ladder, settings, announced, django_capture_on_commit_callbacks
):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 30
    _, silver, gold = ladder
    member = member_in(gold)
    activity(member, "1000.00")
    ends = NOW + timedelta(days=30)

    assert tiers.review(now=NOW).as_tuple() == (0, 0, 1, 0)
    member.refresh_from_db()
    assert (member.tier, member.tier_grace_until) == (gold, ends)

    assert tiers.review(now=ends - MICROSECOND).as_tuple() == (0, 0, 0, 0)
    assert tier_of(member) == gold
    assert not TierChange.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert tiers.review(now=ends).as_tuple() == (0, 1, 0, 0)

    member.refresh_from_db()
    assert (member.tier, member.tier_since, member.tier_grace_until) == (
        silver,
        ends,
        None,
    )
    change = TierChange.objects.get()
    assert (change.kind, change.from_tier, change.to_tier) == ("review", gold, silver)
    assert (change.qualifying_value, change.created_at) == (Decimal("1000.00"), ends)
    assert tier_groups(member.user) == {"loyalty:regular", "loyalty:silver"}
    assert announced == [(member.pk, gold, silver, change)]


def test_without_grace_days_the_review_downgrades_at_once(ladder, settings):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    member = member_in(ladder[2])

    assert tiers.review(now=NOW).as_tuple() == (0, 1, 0, 0)

    member.refresh_from_db()
    assert (member.tier, member.tier_grace_until) == (ladder[0], None)


def test_protected_members_are_kept_until_their_protection_ends(ladder, settings):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    gold = ladder[2]
    member = member_in(gold, tier_protected_until=NOW + timedelta(days=1))

    assert tiers.review(now=NOW).as_tuple() == (0, 0, 0, 1)
    assert tier_of(member) == gold

    assert tiers.review(now=NOW + timedelta(days=1)).as_tuple() == (0, 1, 0, 0)
    assert tier_of(member) == ladder[0]


def test_the_review_catches_up_upgrades_confirmed_by_the_return_window(
    ladder, settings
):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = 14
    member = member_in()
    activity(member, "5000.00", placed_at=NOW - timedelta(days=20), confirmed=False)
    fresh = member_in()
    activity(fresh, "5000.00", placed_at=NOW - timedelta(days=2), confirmed=False)

    assert tiers.review(now=NOW).as_tuple() == (1, 0, 0, 0)

    assert (tier_of(member), tier_of(fresh)) == (ladder[2], ladder[0])
    change = TierChange.objects.get()
    assert (change.member, change.kind, change.to_tier) == (member, "review", ladder[2])
    assert tier_groups(member.user) == {
        "loyalty:regular",
        "loyalty:silver",
        "loyalty:gold",
    }


def test_a_second_review_at_the_same_moment_changes_nothing(ladder, settings):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 30
    regular, silver, gold = ladder
    graced = member_in(gold)
    activity(graced, "1000.00")
    member_in(silver, tier_grace_until=NOW - timedelta(days=1))
    member_in(gold, tier_protected_until=NOW + timedelta(days=5))
    activity(member_in(), "5000.00")
    cleared = member_in(silver, tier_grace_until=NOW + timedelta(days=2))
    activity(cleared, "1500.00")
    first = tiers.review(now=NOW)
    before = snapshot()

    second = tiers.review(now=NOW)

    assert first.as_tuple() == (1, 1, 1, 1)
    assert second.as_tuple() == (0, 0, 0, 1)
    assert snapshot() == before
    cleared.refresh_from_db()
    assert (cleared.tier, cleared.tier_grace_until) == (silver, None)


def test_the_review_ends_a_grace_when_the_member_qualifies_again(ladder, settings):
    gold = ladder[2]
    member = member_in(gold, tier_grace_until=NOW + timedelta(days=10))
    activity(member, "5000.00")

    assert tiers.review(now=NOW).as_tuple() == (0, 0, 0, 0)

    member.refresh_from_db()
    assert (member.tier, member.tier_grace_until) == (gold, None)
    assert not TierChange.objects.exists()


def test_a_review_chunk_touches_only_its_id_range(ladder, settings):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    first, second, third = (member_in(ladder[2]) for _ in range(3))

    result = tiers.review(now=NOW, start_id=second.pk, end_id=third.pk)

    assert result.as_tuple() == (0, 1, 0, 0)
    assert [tier_of(m) for m in (first, second, third)] == [
        ladder[2],
        ladder[0],
        ladder[2],
    ]
    assert tiers.review(now=NOW, start_id=third.pk + 1).as_tuple() == (0, 0, 0, 0)


def test_the_review_task_fans_out_in_chunks(ladder, settings, monkeypatch):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    settings.OSCAR_LOYALTY_TIER_REVIEW_CHUNK = 2
    members = [member_in(ladder[2]) for _ in range(5)]
    ids = [member.pk for member in members]

    chunks = tasks.review_tiers(now=NOW.isoformat())

    assert chunks == len(range(min(ids), max(ids) + 1, 2)) >= 3
    assert {tier_of(member) for member in members} == {ladder[0]}
    assert TierChange.objects.filter(kind="review").count() == 5
    assert tasks.review_tiers(now=NOW.isoformat()) == chunks
    assert TierChange.objects.count() == 5


def test_the_review_task_with_no_members_fans_out_nothing():
    assert tasks.review_tiers() == 0


# End to end through Oscar's checkout -----------------------------------------------


@pytest.fixture
def shopper(client):
    CountryFactory()
    user = UserFactory()
    client.force_login(user)
    return user


def advance(order, *statuses):
    for status in statuses:
        order.set_status(status)


def refund_type():
    refund, _ = PaymentEventType.objects.get_or_create(
        code="refund", defaults={"name": "Refund"}
    )
    return refund


def site_discount(percent):
    everything = Range.objects.create(name="Everything", includes_all_products=True)
    ConditionalOffer.objects.create(
        name=f"{percent}% off",
        offer_type=ConditionalOffer.SITE,
        condition=Condition.objects.create(
            range=everything, type=Condition.COUNT, value=1
        ),
        benefit=Benefit.objects.create(
            range=everything, type=Benefit.PERCENTAGE, value=percent
        ),
    )


def test_placing_an_order_records_its_spend_after_discounts_once(
    client, shopper, ladder
):
    site_discount(10)

    order = place_order(client, ProductFactory(), quantity=2)
    order_placed.send(sender=object(), order=order, user=shopper)

    row = OrderActivity.objects.get()
    member = Member.objects.get(user=shopper)
    assert (row.member, row.order_number, row.placed_at) == (
        member,
        order.number,
        order.date_placed,
    )
    assert row.spend == Decimal("158.40")  # 2 × 88.00 less 10 %
    assert (row.refunded, row.confirmed_at, row.cancelled_at) == (0, None, None)
    assert member.tier == ladder[0]  # the entry tier, from the first order


@pytest.mark.parametrize(("includes_tax", "spend"), [(False, "88.00"), (True, "99.44")])
def test_the_spend_is_on_the_earning_tax_basis(
    client, shopper, settings, includes_tax, spend
):
    settings.OSCAR_LOYALTY_EARN_INCLUDES_TAX = includes_tax
    order = place_order(client, ProductFactory())
    # As if the shop charged 13 % tax (Oscar's default strategy charges none).
    Line.objects.filter(order=order).update(line_price_incl_tax=Decimal("99.44"))
    OrderActivity.objects.all().delete()

    order_placed.send(
        sender=object(), order=Order.objects.get(pk=order.pk), user=shopper
    )

    assert OrderActivity.objects.get().spend == Decimal(spend)


def test_completing_an_order_confirms_its_spend_and_upgrades(
    client, shopper, ladder, announced, django_capture_on_commit_callbacks
):
    order = place_order(client, ProductFactory(), quantity=12)  # 1056.00

    with django_capture_on_commit_callbacks(execute=True):
        advance(order, "Being processed", "Shipped")
    member = Member.objects.get(user=shopper)
    assert member.tier == ladder[0]
    with django_capture_on_commit_callbacks(execute=True):
        advance(order, "Complete")

    assert OrderActivity.objects.get().confirmed_at is not None
    member.refresh_from_db()
    assert member.tier == ladder[1]
    change = TierChange.objects.get()
    assert (change.kind, change.qualifying_value) == ("upgrade", Decimal("1056.00"))
    assert announced == [(member.pk, ladder[0], ladder[1], change)]
    assert tier_groups(shopper) == {"loyalty:regular", "loyalty:silver"}


def test_a_cancelled_order_no_longer_counts(client, shopper, ladder):
    order = place_order(client, ProductFactory(), quantity=12)

    advance(order, "Cancelled")

    row = OrderActivity.objects.get()
    assert row.cancelled_at is not None
    member = Member.objects.get(user=shopper)
    assert tiers.qualifying_value(member) == 0
    assert tiers.confirm_order(order_number=order.number) is None
    assert OrderActivity.objects.get().confirmed_at is None


def test_a_refunded_order_no_longer_counts_but_the_tier_waits_for_the_review(
    client, shopper, ladder, settings
):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    order = place_order(client, ProductFactory(), quantity=12)
    advance(order, "Being processed", "Shipped", "Complete")
    member = Member.objects.get(user=shopper)
    assert member.tier == ladder[1]

    advance(order, "Refunded")

    assert OrderActivity.objects.get().cancelled_at is not None
    assert tiers.qualifying_value(member) == 0
    assert tier_of(member) == ladder[1]
    tiers.review()
    assert tier_of(member) == ladder[0]


def test_partial_refunds_take_their_share_off_the_spend_once(client, shopper):
    order = place_order(
        client, ProductFactory(stockrecord__price=Decimal("10.00")), quantity=3
    )
    advance(order, "Being processed", "Shipped", "Complete")
    line = order.lines.get()
    handler = EventHandler()

    event = handler.create_payment_event(
        order, refund_type(), Decimal("10.00"), [line], [1]
    )
    assert OrderActivity.objects.get().refunded == Decimal("10.00")

    # The same event seen again: saved again, or its refunds recomputed.
    event.line_quantities.get().save()
    tiers.refresh_refunds(order, ("refund",))
    tiers.refresh_refunds(order, ("refund",))
    assert OrderActivity.objects.get().refunded == Decimal("10.00")
    member = Member.objects.get(user=shopper)
    assert tiers.qualifying_value(member) == Decimal("20.00")

    handler.create_payment_event(order, refund_type(), Decimal("20.00"), [line], [2])
    assert OrderActivity.objects.get().refunded == Decimal("30.00")
    assert tiers.qualifying_value(member) == 0
    # More items refunded than the line had: never more than its spend.
    handler.create_payment_event(order, refund_type(), Decimal("10.00"), [line], [1])
    assert OrderActivity.objects.get().refunded == Decimal("30.00")


def test_a_payment_event_that_is_not_a_refund_takes_nothing_off(client, shopper):
    order = place_order(client, ProductFactory(), quantity=2)
    settled, _ = PaymentEventType.objects.get_or_create(
        code="settled", defaults={"name": "Settled"}
    )

    EventHandler().create_payment_event(
        order, settled, Decimal("176.00"), [order.lines.get()], [2]
    )

    assert OrderActivity.objects.get().refunded == 0


# Tier groups -----------------------------------------------------------------------


def test_a_new_tier_gets_its_group(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        tier = Tier.objects.create(code="jade", name="Jade", rank=7, threshold=10)

    assert len(callbacks) == 1
    group = Group.objects.get(name="loyalty:jade")
    tier.refresh_from_db()
    assert tier.group == group
    tier.code = "nephrite"
    tier.save()
    assert Group.objects.get(pk=group.pk).name == "loyalty:nephrite"


def test_a_new_lower_tier_takes_in_the_members_above_it(
    django_capture_on_commit_callbacks,
):
    silver = Tier.objects.create(code="silver", name="Silver", rank=5, threshold=1000)
    gold = Tier.objects.create(code="gold", name="Gold", rank=9, threshold=5000)
    at_silver, at_gold, without = member_in(silver), member_in(gold), member_in()
    tiers.sync_member_groups([at_silver, at_gold])
    newsletter = Group.objects.create(name="newsletter")
    at_gold.user.groups.add(newsletter)
    # A stale membership the resync should remove.
    without.user.groups.add(silver.group)

    with django_capture_on_commit_callbacks(execute=True):
        Tier.objects.create(code="bronze", name="Bronze", rank=1, threshold=100)

    assert tier_groups(at_silver.user) == {"loyalty:bronze", "loyalty:silver"}
    assert tier_groups(at_gold.user) == {
        "loyalty:bronze",
        "loyalty:silver",
        "loyalty:gold",
    }
    assert tier_groups(without.user) == set()
    assert newsletter in at_gold.user.groups.all()

    Member.objects.filter(pk=at_gold.pk).update(tier=silver)
    tiers.resync_all_groups()
    assert tier_groups(at_gold.user) == {"loyalty:bronze", "loyalty:silver"}


def test_a_new_member_joins_the_entry_tier_and_its_group(ladder):
    user = UserFactory()

    member = get_or_create_member(user)

    stored = Member.objects.get(pk=member.pk)
    assert stored.tier == ladder[0]
    assert stored.tier_since is not None
    assert tier_groups(user) == {"loyalty:regular"}


def test_the_member_returned_for_a_new_user_knows_its_entry_tier(ladder):
    user = UserFactory()

    member = get_or_create_member(user)

    assert member.tier == ladder[0]
    assert user.loyalty_member.tier == ladder[0]


def test_without_tiers_or_a_free_tier_a_new_member_has_no_tier():
    user = UserFactory()
    assert Member.objects.get(pk=get_or_create_member(user).pk).tier is None
    assert tier_groups(user) == set()

    Tier.objects.create(code="silver", name="Silver", rank=2, threshold=1000)
    other = UserFactory()
    assert Member.objects.get(pk=get_or_create_member(other).pk).tier is None
    assert tier_groups(other) == set()


def test_the_review_writes_its_members_in_several_locked_batches(
    ladder, settings, monkeypatch
):
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    monkeypatch.setattr(tiers, "LOCK_BATCH", 2)
    gold = ladder[2]
    members = [member_in(gold) for _ in range(5)]

    result = tiers.review(now=NOW)

    assert result.downgraded == 5
    assert {tier_of(member) for member in members} == {ladder[0]}


def test_a_member_who_qualifies_again_before_the_lock_is_not_moved_down(
    ladder, settings, monkeypatch
):
    """The second pass decides on what holds under the lock, not on the first read."""
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    silver = ladder[1]
    member = member_in(silver)
    locked_pass = tiers._review_locked

    def an_order_confirmed_meanwhile(member_ids, *args, **kwargs):
        activity(member, "1500.00")
        return locked_pass(member_ids, *args, **kwargs)

    monkeypatch.setattr(tiers, "_review_locked", an_order_confirmed_meanwhile)

    result = tiers.review(now=NOW)

    assert result.downgraded == 0
    assert tier_of(member) == silver


def test_a_return_window_of_zero_days_counts_unconfirmed_orders_at_once(settings):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = 0
    member = member_in()
    activity(member, "2000.00", placed_at=NOW - timedelta(days=3), confirmed=False)

    assert value_of(member) == Decimal("2000.00")


def test_a_tier_reached_in_a_calendar_year_is_kept_through_the_next(ladder, settings):
    settings.OSCAR_LOYALTY_TIER_WINDOW = "calendar_year"
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    zone = ZoneInfo(settings.TIME_ZONE)
    gold = ladder[2]
    member = member_in(gold)
    activity(member, "6000.00", placed_at=datetime(2025, 11, 20, 12, tzinfo=zone))

    tiers.review(now=datetime(2026, 6, 1, tzinfo=zone))
    assert tier_of(member) == gold

    tiers.review(now=datetime(2027, 1, 2, tzinfo=zone))
    assert tier_of(member) == ladder[0]


def test_a_failing_tier_changed_listener_does_not_undo_or_break_the_change(
    ladder, staff, django_capture_on_commit_callbacks, caplog
):
    def broken(**kwargs):
        raise RuntimeError("a shop's listener is broken")

    tier_changed.connect(broken, weak=False, dispatch_uid="test_tiers.broken")
    try:
        member = member_in(ladder[0])
        with django_capture_on_commit_callbacks(execute=True):
            tiers.set_tier(member=member, tier=ladder[2], reason="VIP", actor=staff)
    finally:
        tier_changed.disconnect(dispatch_uid="test_tiers.broken")

    assert tier_of(member) == ladder[2]
    assert "tier_changed receiver" in caplog.text


def test_the_first_pass_brings_back_only_members_who_may_move(ladder):
    regular, silver, gold = ladder
    settled = member_in(silver)
    activity(settled, "1500.00")
    rising = member_in(silver)
    activity(rising, "5000.00")
    waiting = member_in(gold, tier_grace_until=NOW + timedelta(days=3))

    rows = tiers._maybe_moving(tiers.all_tiers(), now=NOW)

    assert [row[0] for row in rows] == [rising.pk, waiting.pk]
    assert tiers._as_value(rows[0][1]) == Decimal("5000.00")
