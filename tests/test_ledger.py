"""The points ledger's services: earn, confirm, hold, capture, redeem, restore,
reverse, adjust, expire, and the check that compares cached balances with the rows.

Each test is given a small ledger, does one thing through a service and checks the
balances, the rows written and that ``find_drift()`` still finds nothing. Every call
passes ``now=`` so dates are fixed; expiry is 12 months without rounding unless a test
changes the policy.
"""

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.db.models import F

from oscar_loyalty import jobs, rules
from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import (
    HoldNotActive,
    InsufficientPoints,
    InvalidPoints,
    ReasonRequired,
)
from oscar_loyalty.models import Entry, Hold, Lot, Member, Posting
from oscar_loyalty.services import holds, ledger, orders
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

# 10:00 UTC is 18:00 in the shop (Asia/Shanghai).
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
#: A lot confirmed at T0 expires at this moment (12 months, no rounding).
T0_EXPIRY = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def policy(settings):
    settings.OSCAR_LOYALTY_EXPIRY_MONTHS = 12
    settings.OSCAR_LOYALTY_EXPIRY_ROUNDING = "none"
    settings.OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES = 30
    return settings


@pytest.fixture
def member():
    return get_or_create_member(UserFactory())


@pytest.fixture
def other_member():
    return get_or_create_member(UserFactory())


# Helpers ------------------------------------------------------------------------------


def refreshed(member):
    return Member.objects.get(pk=member.pk)


def balances(member):
    member = refreshed(member)
    return {
        "available": member.available,
        "held": member.held,
        "pending": member.pending,
        "lifetime_earned": member.lifetime_earned,
    }


def earned_lot(member, points, *, order="1001", line=1, now=T0, confirm=True):
    """A lot the member earned on an order line, confirmed at ``now`` by default."""
    posting = ledger.earn(
        member=member,
        key=f"earn:{order}:{line}",
        points=points,
        order_number=order,
        order_line_id=line,
        now=now,
    )
    lot = posting.entries.get().lot
    if confirm:
        ledger.confirm_lot(lot=lot, now=now)
    return Lot.objects.get(pk=lot.pk)


def remaining(*lots):
    return [Lot.objects.get(pk=lot.pk).remaining for lot in lots]


def entry_changes(posting):
    """``{lot id: available change}`` of the posting's entries."""
    return dict(
        Entry.objects.filter(posting=posting).values_list("lot_id", "available_change")
    )


def ledger_snapshot():
    """Everything a refused operation must leave as it was."""
    return {
        "postings": list(Posting.objects.order_by("pk").values_list("pk", "key")),
        "entries": Entry.objects.count(),
        "lots": list(
            Lot.objects.order_by("pk").values_list(
                "pk", "status", "remaining", "reversed", "expires_at"
            )
        ),
        "holds": list(
            Hold.objects.order_by("pk").values_list("pk", "status", "points")
        ),
        "members": list(
            Member.objects.order_by("pk").values_list(
                "pk", "available", "held", "pending", "lifetime_earned"
            )
        ),
    }


# Earning ------------------------------------------------------------------------------


def test_earned_points_are_pending_and_count_in_the_lifetime_total(member):
    posting = ledger.earn(
        member=member, key="earn:1001:1", points=120, order_number="1001", now=T0
    )

    assert balances(member) == {
        "available": 0,
        "held": 0,
        "pending": 120,
        "lifetime_earned": 120,
    }
    lot = Lot.objects.get(member=member)
    assert (lot.status, lot.points, lot.remaining, lot.expires_at) == (
        Lot.Status.PENDING,
        120,
        120,
        None,
    )
    assert posting.kind == Posting.Kind.EARN
    assert list(posting.entries.values_list("pending_change", "available_change")) == [
        (120, 0)
    ]
    assert find_drift() == []


def test_pending_points_cannot_be_spent(member):
    earned_lot(member, 120, confirm=False)

    with pytest.raises(InsufficientPoints):
        ledger.redeem(member=member, points=1, key="reward:1", now=T0)

    assert balances(member)["pending"] == 120
    assert find_drift() == []


# Idempotency: the same key twice writes one posting -----------------------------------


def test_earning_twice_with_the_same_key_writes_one_posting(member):
    first = ledger.earn(member=member, key="earn:1001:1", points=120, now=T0)

    again = ledger.earn(member=member, key="earn:1001:1", points=120, now=T0)

    assert again.pk == first.pk
    assert (Posting.objects.count(), Lot.objects.count()) == (1, 1)
    assert balances(member)["pending"] == 120
    assert balances(member)["lifetime_earned"] == 120
    assert find_drift() == []


def test_confirming_a_lot_twice_writes_one_posting(member):
    lot = earned_lot(member, 120, confirm=False)
    first = ledger.confirm_lot(lot=lot, now=T0)

    again = ledger.confirm_lot(lot=lot, now=T0 + timedelta(days=3))

    assert again.pk == first.pk
    assert ledger.confirm_order(order_number="1001", now=T0) == []
    assert Posting.objects.filter(kind=Posting.Kind.CONFIRM).count() == 1
    assert Lot.objects.get(pk=lot.pk).expires_at == T0_EXPIRY
    assert balances(member)["available"] == 120
    assert find_drift() == []


def test_capturing_an_orders_hold_twice_redeems_once(member):
    earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=40, now=T0)
    first = holds.capture_hold(hold=hold, order_number="2001", now=T0)

    again = holds.capture_hold(hold=hold, order_number="2001", now=T0)

    assert again.pk == first.pk
    assert first.key == "redeem:2001"
    assert Posting.objects.filter(kind=Posting.Kind.REDEEM).count() == 1
    assert balances(member)["available"] == 60
    assert balances(member)["held"] == 0
    assert find_drift() == []


def test_restoring_an_orders_redemption_twice_gives_the_points_back_once(member):
    earned_lot(member, 100)
    ledger.redeem(member=member, points=40, key="redeem:2001", order_number="2001")
    first = ledger.restore_redemption(order_number="2001", now=T0)

    again = ledger.restore_redemption(order_number="2001", now=T0)

    assert again.pk == first.pk
    assert Lot.objects.filter(source=Lot.Source.RESTORE).count() == 1
    assert balances(member)["available"] == 100
    assert find_drift() == []


def test_reversing_with_the_same_key_twice_takes_the_points_back_once(member):
    lot = earned_lot(member, 100)
    first = ledger.reverse_lot(lot=lot, points=30, key="reverse:ev1:1", now=T0)

    again = ledger.reverse_lot(lot=lot, points=30, key="reverse:ev1:1", now=T0)

    assert again.pk == first.pk
    assert Lot.objects.get(pk=lot.pk).reversed == 30
    assert balances(member)["available"] == 70
    assert balances(member)["lifetime_earned"] == 70
    assert find_drift() == []


def test_an_adjustment_replayed_with_its_key_is_written_once(member):
    actor = ledger.Actor(id=7, name="Ada")
    first = ledger.adjust(
        member=member, points=50, reason="Goodwill", actor=actor, key="adjust:x", now=T0
    )

    again = ledger.adjust(
        member=member, points=50, reason="Goodwill", actor=actor, key="adjust:x", now=T0
    )

    assert again.pk == first.pk
    assert balances(member)["available"] == 50
    assert Lot.objects.filter(source=Lot.Source.ADJUST).count() == 1
    assert find_drift() == []


def test_running_the_expiry_job_twice_expires_each_lot_once(member):
    earned_lot(member, 100)

    first = jobs.expire_lots(now=T0_EXPIRY)
    again = jobs.expire_lots(now=T0_EXPIRY + timedelta(days=1))

    assert (first, again) == (1, 0)
    assert Posting.objects.filter(kind=Posting.Kind.EXPIRE).count() == 1
    assert balances(member)["available"] == 0
    assert find_drift() == []


# Confirming ---------------------------------------------------------------------------


def test_confirming_makes_pending_points_spendable_until_the_policys_expiry(
    member, policy
):
    policy.OSCAR_LOYALTY_EXPIRY_MONTHS = 6
    lot = earned_lot(member, 120, confirm=False)

    posting = ledger.confirm_lot(lot=lot, now=T0)

    lot.refresh_from_db()
    assert lot.status == Lot.Status.ACTIVE
    assert lot.confirmed_at == T0
    assert lot.expires_at == datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
    assert balances(member) == {
        "available": 120,
        "held": 0,
        "pending": 0,
        "lifetime_earned": 120,
    }
    assert list(posting.entries.values_list("available_change", "pending_change")) == [
        (120, -120)
    ]
    assert find_drift() == []


def test_confirming_rounds_the_expiry_as_the_policy_says(member, policy):
    policy.OSCAR_LOYALTY_EXPIRY_ROUNDING = "month_end"
    lot = earned_lot(member, 120, confirm=False)
    # 20:00 UTC on 31 January is already 1 February in the shop.
    confirmed = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)

    ledger.confirm_lot(lot=lot, now=confirmed)

    lot.refresh_from_db()
    assert lot.expires_at == datetime(2027, 2, 28, 15, 59, 59, 999999, tzinfo=UTC)
    assert find_drift() == []


def test_confirming_an_order_confirms_each_of_its_pending_lots(member):
    first = earned_lot(member, 100, order="1001", line=1, confirm=False)
    second = earned_lot(member, 20, order="1001", line=2, confirm=False)
    elsewhere = earned_lot(member, 7, order="1002", line=1, confirm=False)

    postings = ledger.confirm_order(order_number="1001", now=T0)

    assert [posting.key for posting in postings] == [
        f"confirm:{first.pk}",
        f"confirm:{second.pk}",
    ]
    assert Lot.objects.get(pk=elsewhere.pk).status == Lot.Status.PENDING
    assert balances(member)["available"] == 120
    assert balances(member)["pending"] == 7
    assert find_drift() == []


# Redeeming ----------------------------------------------------------------------------


def test_redeeming_spends_the_lots_that_expire_first_one_entry_per_lot(member, policy):
    # Created first but expiring last: created order must not decide.
    late = earned_lot(member, 100, order="1001", now=T0 + timedelta(days=20))
    policy.OSCAR_LOYALTY_EXPIRY_MONTHS = 3
    soon = earned_lot(member, 50, order="1002", now=T0)
    middle = earned_lot(member, 80, order="1003", now=T0 + timedelta(days=10))

    posting = ledger.redeem(member=member, points=150, key="reward:1", now=T0)

    assert remaining(soon, middle, late) == [0, 0, 80]
    assert entry_changes(posting) == {soon.pk: -50, middle.pk: -80, late.pk: -20}
    assert balances(member)["available"] == 80
    assert find_drift() == []


def test_lots_expiring_at_the_same_moment_are_spent_in_the_order_they_were_made(
    member,
):
    first = earned_lot(member, 10, order="1001")
    second = earned_lot(member, 10, order="1002")
    third = earned_lot(member, 10, order="1003")

    posting = ledger.redeem(member=member, points=15, key="reward:1", now=T0)

    assert remaining(first, second, third) == [0, 5, 10]
    assert entry_changes(posting) == {first.pk: -10, second.pk: -5}
    assert find_drift() == []


def test_a_redemption_across_more_lots_than_one_batch_reads_them_all(
    member, monkeypatch
):
    monkeypatch.setattr(ledger, "LOT_BATCH", 2)
    lots = [earned_lot(member, 10, order=f"10{n}") for n in range(5)]

    posting = ledger.redeem(member=member, points=45, key="reward:1", now=T0)

    assert remaining(*lots) == [0, 0, 0, 0, 5]
    assert len(entry_changes(posting)) == 5
    assert find_drift() == []


def test_redeeming_more_than_the_spendable_balance_is_refused_and_writes_nothing(
    member,
):
    earned_lot(member, 100)
    before = ledger_snapshot()

    with pytest.raises(InsufficientPoints) as refused:
        ledger.redeem(member=member, points=101, key="reward:1", now=T0)

    assert refused.value.params == {"spendable": 100, "requested": 101}
    assert ledger_snapshot() == before
    assert find_drift() == []


# Holds --------------------------------------------------------------------------------


def test_points_held_for_a_basket_cannot_be_held_elsewhere_or_redeemed(member):
    earned_lot(member, 100)
    holds.hold_points(member=member, basket_id=1, points=70, now=T0)

    with pytest.raises(InsufficientPoints):
        holds.hold_points(member=member, basket_id=2, points=31, now=T0)
    with pytest.raises(InsufficientPoints):
        ledger.redeem(member=member, points=31, key="reward:1", now=T0)

    assert balances(member)["held"] == 70
    assert refreshed(member).spendable == 30
    assert Hold.objects.filter(status=Hold.Status.ACTIVE).count() == 1
    assert find_drift() == []


def test_the_rest_of_the_balance_stays_spendable_beside_a_hold(member):
    earned_lot(member, 100)
    holds.hold_points(member=member, basket_id=1, points=70, now=T0)

    holds.hold_points(member=member, basket_id=2, points=30, now=T0)

    assert balances(member)["held"] == 100
    assert refreshed(member).spendable == 0
    assert find_drift() == []


def test_a_new_hold_for_the_same_basket_replaces_the_old_one(member):
    earned_lot(member, 100)
    old = holds.hold_points(member=member, basket_id=1, points=70, now=T0)

    # 90 > the 30 left beside the old hold: the old hold's points count again.
    new = holds.hold_points(member=member, basket_id=1, points=90, now=T0)

    old.refresh_from_db()
    assert old.status == Hold.Status.RELEASED
    assert new.status == Hold.Status.ACTIVE
    assert balances(member)["held"] == 90
    assert find_drift() == []


def test_a_refused_new_hold_leaves_the_baskets_old_hold_in_place(member):
    earned_lot(member, 100)
    old = holds.hold_points(member=member, basket_id=1, points=70, now=T0)

    with pytest.raises(InsufficientPoints):
        holds.hold_points(member=member, basket_id=1, points=101, now=T0)

    old.refresh_from_db()
    assert old.status == Hold.Status.ACTIVE
    assert balances(member)["held"] == 70
    assert find_drift() == []


def test_a_basket_taken_over_by_another_member_releases_the_first_members_hold(
    member, other_member
):
    earned_lot(member, 100, order="1001")
    earned_lot(other_member, 100, order="1002")
    first = holds.hold_points(member=member, basket_id=1, points=60, now=T0)

    holds.hold_points(member=other_member, basket_id=1, points=40, now=T0)

    first.refresh_from_db()
    assert first.status == Hold.Status.RELEASED
    assert balances(member)["held"] == 0
    assert balances(other_member)["held"] == 40
    assert find_drift() == []


def test_a_refused_takeover_of_a_basket_leaves_the_first_members_hold(
    member, other_member
):
    earned_lot(member, 100, order="1001")
    earned_lot(other_member, 10, order="1002")
    first = holds.hold_points(member=member, basket_id=1, points=60, now=T0)
    before = ledger_snapshot()

    with pytest.raises(InsufficientPoints):
        holds.hold_points(member=other_member, basket_id=1, points=40, now=T0)

    assert ledger_snapshot() == before
    first.refresh_from_db()
    assert first.status == Hold.Status.ACTIVE
    assert find_drift() == []


def test_releasing_a_hold_makes_its_points_spendable_at_once(member):
    earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=70, now=T0)

    released = holds.release_hold(hold=hold, now=T0)

    assert released is True
    assert refreshed(member).spendable == 100
    ledger.redeem(member=member, points=100, key="reward:1", now=T0)
    assert holds.release_hold(hold=hold, now=T0) is False
    assert find_drift() == []


def test_releasing_a_baskets_hold_finds_it_by_the_basket(member):
    earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=5, points=70, now=T0)

    assert holds.release_basket_hold(basket_id=5, now=T0) is True
    assert holds.release_basket_hold(basket_id=5, now=T0) is False

    hold.refresh_from_db()
    assert (hold.status, hold.closed_at) == (Hold.Status.RELEASED, T0)
    assert balances(member)["held"] == 0
    assert find_drift() == []


def test_the_stale_hold_job_releases_only_holds_past_their_timeout(
    member, other_member, policy
):
    policy.OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES = 15
    earned_lot(member, 100, order="1001")
    earned_lot(other_member, 100, order="1002")
    stale = holds.hold_points(member=member, basket_id=1, points=30, now=T0)
    fresh = holds.hold_points(
        member=member, basket_id=2, points=20, now=T0 + timedelta(minutes=10)
    )
    other_stale = holds.hold_points(member=other_member, basket_id=3, points=50, now=T0)

    released = jobs.release_stale_holds(now=T0 + timedelta(minutes=15))

    assert released == 2
    statuses = dict(Hold.objects.values_list("pk", "status"))
    assert statuses == {
        stale.pk: Hold.Status.RELEASED,
        fresh.pk: Hold.Status.ACTIVE,
        other_stale.pk: Hold.Status.RELEASED,
    }
    assert balances(member)["held"] == 20
    assert balances(other_member)["held"] == 0
    assert jobs.release_stale_holds(now=T0 + timedelta(minutes=15)) == 0
    assert find_drift() == []


def test_a_hold_is_released_as_soon_as_its_timeout_has_passed_and_not_before(
    member, policy
):
    policy.OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES = 15
    earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=30, now=T0)
    timeout = T0 + timedelta(minutes=15)

    early = jobs.release_stale_holds(now=timeout - timedelta(microseconds=1))
    on_time = jobs.release_stale_holds(now=timeout)

    assert (early, on_time) == (0, 1)
    hold.refresh_from_db()
    assert (hold.status, hold.closed_at) == (Hold.Status.RELEASED, timeout)
    assert balances(member)["held"] == 0
    assert find_drift() == []


def test_capturing_a_hold_spends_the_lots_that_expire_first(member):
    late = earned_lot(member, 100, order="1001", now=T0 + timedelta(days=1))
    soon = earned_lot(member, 50, order="1002", now=T0)
    hold = holds.hold_points(member=member, basket_id=1, points=80, now=T0)

    posting = holds.capture_hold(hold=hold, order_number="2001", now=T0)

    hold.refresh_from_db()
    assert (hold.status, hold.order_number) == (Hold.Status.CAPTURED, "2001")
    assert entry_changes(posting) == {soon.pk: -50, late.pk: -30}
    assert balances(member)["available"] == 70
    assert balances(member)["held"] == 0
    assert find_drift() == []


def test_capturing_a_released_hold_is_refused_and_writes_nothing(member):
    earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=70, now=T0)
    holds.release_hold(hold=hold, now=T0)
    before = ledger_snapshot()

    with pytest.raises(HoldNotActive):
        holds.capture_hold(hold=hold, order_number="2001", now=T0)

    assert ledger_snapshot() == before
    assert not Posting.objects.filter(key="redeem:2001").exists()
    assert find_drift() == []


def test_capturing_a_hold_the_stale_job_released_is_refused(member):
    earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=70, now=T0)
    jobs.release_stale_holds(now=T0 + timedelta(minutes=30))
    before = ledger_snapshot()

    with pytest.raises(HoldNotActive):
        holds.capture_hold(hold=hold, order_number="2001", now=T0)

    assert ledger_snapshot() == before
    assert find_drift() == []


# Restoring a cancelled order's redemption ---------------------------------------------


def test_restoring_gives_the_points_back_as_new_lots_with_the_old_expiry(member):
    soon = earned_lot(member, 50, order="1001", now=T0)
    late = earned_lot(member, 100, order="1002", now=T0 + timedelta(days=30))
    hold = holds.hold_points(member=member, basket_id=1, points=80, now=T0)
    holds.capture_hold(hold=hold, order_number="2001", now=T0)

    posting = ledger.restore_redemption(
        order_number="2001", now=T0 + timedelta(days=40)
    )

    restored = Lot.objects.filter(source=Lot.Source.RESTORE).order_by("expires_at")
    assert [(lot.points, lot.remaining, lot.status) for lot in restored] == [
        (50, 50, Lot.Status.ACTIVE),
        (30, 30, Lot.Status.ACTIVE),
    ]
    assert [lot.expires_at for lot in restored] == [soon.expires_at, late.expires_at]
    assert remaining(soon, late) == [0, 70]
    assert posting.kind == Posting.Kind.RESTORE
    assert balances(member) == {
        "available": 150,
        "held": 0,
        "pending": 0,
        "lifetime_earned": 150,
    }
    assert find_drift() == []


def test_restoring_an_order_that_redeemed_nothing_does_nothing(member):
    earned_lot(member, 100)
    before = ledger_snapshot()

    assert ledger.restore_redemption(order_number="2001", now=T0) is None

    assert ledger_snapshot() == before


# Reversing ----------------------------------------------------------------------------


def test_reversing_a_pending_lot_takes_the_points_from_pending(member):
    lot = earned_lot(member, 100, confirm=False)

    ledger.reverse_lot(lot=lot, points=40, key="reverse:ev1:1", now=T0)

    lot.refresh_from_db()
    assert (lot.status, lot.remaining, lot.reversed) == (Lot.Status.PENDING, 60, 40)
    assert balances(member) == {
        "available": 0,
        "held": 0,
        "pending": 60,
        "lifetime_earned": 60,
    }
    assert find_drift() == []


def test_a_pending_lot_reversed_in_full_can_no_longer_be_confirmed(member):
    lot = earned_lot(member, 100, confirm=False)

    ledger.reverse_lot(lot=lot, points=100, key="reverse:cancel-1001:1", now=T0)

    lot.refresh_from_db()
    assert (lot.status, lot.remaining, lot.reversed) == (Lot.Status.REVERSED, 0, 100)
    assert ledger.confirm_lot(lot=lot, now=T0) is None
    assert balances(member)["pending"] == 0
    assert balances(member)["lifetime_earned"] == 0
    assert find_drift() == []


def test_reversing_an_unspent_active_lot_takes_the_points_from_the_lot(member):
    lot = earned_lot(member, 100)
    other = earned_lot(member, 50, order="1002")

    posting = ledger.reverse_lot(lot=lot, points=100, key="reverse:ev1:1", now=T0)

    assert entry_changes(posting) == {lot.pk: -100}
    lot.refresh_from_db()
    assert (lot.status, lot.remaining, lot.reversed) == (Lot.Status.REVERSED, 0, 100)
    assert remaining(other) == [50]
    assert posting.shortfall == 0
    assert balances(member)["available"] == 50
    assert balances(member)["lifetime_earned"] == 50
    assert find_drift() == []


def test_reversing_a_partly_spent_lot_takes_the_rest_from_other_lots(member):
    lot = earned_lot(member, 100, order="1001", now=T0)
    other = earned_lot(member, 100, order="1002", now=T0 + timedelta(days=1))
    ledger.redeem(member=member, points=70, key="reward:1", now=T0)

    posting = ledger.reverse_lot(lot=lot, points=100, key="reverse:ev1:1", now=T0)

    assert entry_changes(posting) == {lot.pk: -30, other.pk: -70}
    assert remaining(lot, other) == [0, 30]
    assert posting.shortfall == 0
    assert balances(member)["available"] == 30
    assert balances(member)["lifetime_earned"] == 100
    assert find_drift() == []


def test_reversing_points_the_member_already_spent_records_a_shortfall(member):
    lot = earned_lot(member, 100)
    ledger.redeem(member=member, points=100, key="reward:1", now=T0)

    posting = ledger.reverse_lot(lot=lot, points=100, key="reverse:ev1:1", now=T0)

    assert posting.shortfall == 100
    assert Posting.objects.get(pk=posting.pk).shortfall == 100
    assert entry_changes(posting) == {}
    lot.refresh_from_db()
    assert lot.reversed == 100
    assert balances(member) == {
        "available": 0,
        "held": 0,
        "pending": 0,
        "lifetime_earned": 0,
    }
    assert find_drift() == []


def test_a_shortfall_takes_what_is_left_and_records_only_the_rest(member):
    lot = earned_lot(member, 100, order="1001")
    earned_lot(member, 20, order="1002", now=T0 + timedelta(days=1))
    ledger.redeem(member=member, points=110, key="reward:1", now=T0)

    posting = ledger.reverse_lot(lot=lot, points=100, key="reverse:ev1:1", now=T0)

    assert posting.shortfall == 90
    assert balances(member)["available"] == 0
    assert find_drift() == []


def test_partial_refunds_never_take_back_more_than_the_lot_earned(member):
    lot = earned_lot(member, 100)
    earned_lot(member, 500, order="1002")

    taken = []
    for event in range(4):
        posting = ledger.reverse_lot(
            lot=lot, points=40, key=f"reverse:refund-{event}:1", now=T0
        )
        taken.append(-sum(entry_changes(posting).values()))

    assert taken == [40, 40, 20, 0]
    lot.refresh_from_db()
    assert (lot.status, lot.remaining, lot.reversed) == (Lot.Status.REVERSED, 0, 100)
    assert balances(member)["available"] == 500
    assert balances(member)["lifetime_earned"] == 500
    assert find_drift() == []


def test_reversing_an_expired_lot_takes_back_only_what_was_spent_of_it(member):
    lot = earned_lot(member, 100, order="1001", now=T0)
    other = earned_lot(member, 100, order="1002", now=T0 + timedelta(days=60))
    ledger.redeem(member=member, points=30, key="reward:1", now=T0)
    jobs.expire_lots(now=T0_EXPIRY)  # the 70 left of the lot expire

    posting = ledger.reverse_lot(
        lot=lot, points=100, key="reverse:ev1:1", now=T0_EXPIRY
    )

    assert entry_changes(posting) == {other.pk: -30}
    assert posting.shortfall == 0
    lot.refresh_from_db()
    assert (lot.status, lot.reversed) == (Lot.Status.EXPIRED, 30)
    assert balances(member)["available"] == 70
    assert balances(member)["lifetime_earned"] == 170
    assert find_drift() == []


def test_reversing_a_lot_that_expired_unspent_takes_nothing(member):
    lot = earned_lot(member, 100, order="1001", now=T0)
    earned_lot(member, 100, order="1002", now=T0 + timedelta(days=60))
    jobs.expire_lots(now=T0_EXPIRY)

    posting = ledger.reverse_lot(
        lot=lot, points=100, key="reverse:ev1:1", now=T0_EXPIRY
    )

    assert entry_changes(posting) == {}
    assert posting.shortfall == 0
    assert balances(member)["available"] == 100
    assert balances(member)["lifetime_earned"] == 200
    assert find_drift() == []


def test_reversing_points_a_basket_holds_releases_that_basket_s_hold(member):
    lot = earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=100, now=T0)

    posting = ledger.reverse_lot(lot=lot, points=100, key="reverse:ev1:1", now=T0)

    assert posting.shortfall == 0
    assert refreshed(member).held == 0
    with pytest.raises(HoldNotActive):
        holds.capture_hold(hold=hold, order_number="2001", now=T0)
    assert balances(member)["available"] == 0
    assert find_drift() == []


def test_points_of_a_reversed_lot_cannot_be_spent_after_the_basket_lets_them_go(
    member,
):
    lot = earned_lot(member, 100)
    hold = holds.hold_points(member=member, basket_id=1, points=100, now=T0)
    ledger.reverse_lot(lot=lot, points=100, key="reverse:cancel-1001:1", now=T0)

    holds.release_hold(hold=hold, now=T0)

    assert refreshed(member).spendable == 0


# Cancelling an order (services.orders) ------------------------------------------------


def test_cancelling_an_order_leaves_no_more_than_the_order_never_happened(member):
    # Given 50 points, an order that spent them and earned 100, and a reward that
    # spent those 100.
    earned_lot(member, 50, order="1000")
    hold = holds.hold_points(member=member, basket_id=1, points=50, now=T0)
    holds.capture_hold(hold=hold, order_number="2001", now=T0)
    earned_lot(member, 100, order="2001")
    ledger.redeem(member=member, points=100, key="reward:1", now=T0)

    # When the order is cancelled: -100 earned, +50 redeemed, so 50 are owed.
    orders.cancel_order(order_number="2001", now=T0)

    # Then the 50 given back cover part of what the order earned.
    assert refreshed(member).spendable == 0
    assert sum(Posting.objects.values_list("shortfall", flat=True)) == 50


# Adjusting ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "   "], ids=repr)
def test_an_adjustment_without_a_reason_is_refused(member, reason):
    earned_lot(member, 100)
    before = ledger_snapshot()

    with pytest.raises(ReasonRequired):
        ledger.adjust(
            member=member, points=10, reason=reason, actor=ledger.SYSTEM, now=T0
        )

    assert ledger_snapshot() == before


def test_an_adjustment_records_who_made_it_and_why(member):
    staff = StaffFactory(first_name="Ada", last_name="Wong")

    posting = ledger.adjust(
        member=member,
        points=50,
        reason="  Apology for a late parcel ",
        actor=ledger.Actor.from_user(staff),
        now=T0,
    )

    posting.refresh_from_db()
    assert (posting.kind, posting.actor_id, posting.actor_name, posting.reason) == (
        Posting.Kind.ADJUST,
        staff.pk,
        "Ada Wong",
        "Apology for a late parcel",
    )
    assert re.fullmatch(r"adjust:[0-9a-f-]{36}", posting.key)
    lot = Lot.objects.get(member=member)
    assert (lot.source, lot.status, lot.expires_at) == (
        Lot.Source.ADJUST,
        Lot.Status.ACTIVE,
        T0_EXPIRY,
    )
    assert balances(member)["available"] == 50
    assert balances(member)["lifetime_earned"] == 50
    assert find_drift() == []


def test_taking_points_away_spends_the_lots_that_expire_first(member):
    soon = earned_lot(member, 30, order="1001", now=T0)
    late = earned_lot(member, 100, order="1002", now=T0 + timedelta(days=1))

    posting = ledger.adjust(
        member=member, points=-50, reason="Duplicate award", actor=ledger.SYSTEM
    )

    assert entry_changes(posting) == {soon.pk: -30, late.pk: -20}
    assert balances(member)["available"] == 80
    # Taking points away is not a reversal of earnings.
    assert balances(member)["lifetime_earned"] == 130
    assert find_drift() == []


def test_taking_away_more_than_the_member_can_spend_is_refused_and_writes_nothing(
    member,
):
    earned_lot(member, 100)
    holds.hold_points(member=member, basket_id=1, points=60, now=T0)
    before = ledger_snapshot()

    with pytest.raises(InsufficientPoints) as refused:
        ledger.adjust(
            member=member, points=-41, reason="Duplicate award", actor=ledger.SYSTEM
        )

    assert refused.value.params == {"spendable": 40, "requested": 41}
    assert ledger_snapshot() == before
    assert find_drift() == []


# Expiring -----------------------------------------------------------------------------


def test_the_expiry_job_expires_only_lots_past_their_date(member):
    due = earned_lot(member, 100, order="1001", now=T0)
    later = earned_lot(member, 40, order="1002", now=T0 + timedelta(seconds=1))
    pending = earned_lot(member, 7, order="1003", confirm=False)

    expired = jobs.expire_lots(now=T0_EXPIRY)

    assert expired == 1
    statuses = dict(Lot.objects.values_list("pk", "status"))
    assert statuses == {
        due.pk: Lot.Status.EXPIRED,
        later.pk: Lot.Status.ACTIVE,
        pending.pk: Lot.Status.PENDING,
    }
    posting = Posting.objects.get(kind=Posting.Kind.EXPIRE)
    assert posting.key == f"expire:{due.pk}"
    assert entry_changes(posting) == {due.pk: -100}
    assert balances(member)["available"] == 40
    assert balances(member)["lifetime_earned"] == 147
    assert find_drift() == []


def test_the_expiry_job_expires_only_what_is_left_of_a_partly_spent_lot(member):
    lot = earned_lot(member, 100)
    ledger.redeem(member=member, points=35, key="reward:1", now=T0)

    jobs.expire_lots(now=T0_EXPIRY)

    posting = Posting.objects.get(kind=Posting.Kind.EXPIRE)
    assert entry_changes(posting) == {lot.pk: -65}
    assert balances(member)["available"] == 0
    assert find_drift() == []


def test_the_expiry_job_leaves_members_with_points_held_at_checkout_for_later(
    member, other_member
):
    held_lot = earned_lot(member, 100, order="1001")
    free_lot = earned_lot(other_member, 100, order="1002")
    hold = holds.hold_points(member=member, basket_id=1, points=10, now=T0_EXPIRY)

    expired = jobs.expire_lots(now=T0_EXPIRY)

    assert expired == 1
    assert Lot.objects.get(pk=held_lot.pk).status == Lot.Status.ACTIVE
    assert Lot.objects.get(pk=free_lot.pk).status == Lot.Status.EXPIRED
    assert balances(member)["available"] == 100
    holds.release_hold(hold=hold, now=T0_EXPIRY)
    assert jobs.expire_lots(now=T0_EXPIRY) == 1
    assert balances(member)["available"] == 0
    assert find_drift() == []


def test_the_expiry_job_expires_only_lots_in_its_id_range(member, other_member):
    lots = [
        earned_lot(member, 10, order="1001"),
        earned_lot(other_member, 20, order="1002"),
        earned_lot(member, 30, order="1003"),
        earned_lot(other_member, 40, order="1004"),
    ]

    expired = jobs.expire_lots(now=T0_EXPIRY, start_id=lots[1].pk, end_id=lots[3].pk)

    assert expired == 2
    assert [Lot.objects.get(pk=lot.pk).status for lot in lots] == [
        Lot.Status.ACTIVE,
        Lot.Status.EXPIRED,
        Lot.Status.EXPIRED,
        Lot.Status.ACTIVE,
    ]
    assert balances(member)["available"] == 10
    assert balances(other_member)["available"] == 40
    assert jobs.expire_lots(now=T0_EXPIRY, start_id=lots[3].pk) == 1
    assert jobs.expire_lots(now=T0_EXPIRY, end_id=lots[1].pk) == 1
    assert Lot.objects.filter(status=Lot.Status.ACTIVE).count() == 0
    assert find_drift() == []


def test_the_expiry_job_with_nothing_due_writes_nothing(member):
    earned_lot(member, 100)
    before = ledger_snapshot()

    assert jobs.expire_lots(now=T0_EXPIRY - timedelta(microseconds=1)) == 0

    assert ledger_snapshot() == before


# Members ------------------------------------------------------------------------------


def test_a_user_gets_one_member_account_however_often_it_is_asked_for():
    user = UserFactory()

    first = get_or_create_member(user)
    again = get_or_create_member(user)
    from_a_fresh_user = get_or_create_member(type(user).objects.get(pk=user.pk))

    assert first.pk == again.pk == from_a_fresh_user.pk
    assert Member.objects.filter(user=user).count() == 1


def test_member_numbers_are_m_and_ten_digits_and_unique():
    members = [get_or_create_member(UserFactory()) for _ in range(5)]

    for member in members:
        assert re.fullmatch(r"M\d{10}", member.number)
    assert len({member.number for member in members}) == 5


def test_a_member_remembers_the_channel_it_joined_through():
    member = get_or_create_member(UserFactory(), channel=Member.Channel.STORE)

    assert refreshed(member).channel == Member.Channel.STORE


# The ledger is append-only ------------------------------------------------------------


def test_a_posting_cannot_be_deleted(member):
    posting = ledger.earn(member=member, key="earn:1001:1", points=10, now=T0)

    with pytest.raises(TypeError):
        posting.delete()

    assert Posting.objects.filter(pk=posting.pk).exists()


def test_an_entry_cannot_be_deleted(member):
    posting = ledger.earn(member=member, key="earn:1001:1", points=10, now=T0)
    entry = posting.entries.get()

    with pytest.raises(TypeError):
        entry.delete()

    assert Entry.objects.filter(pk=entry.pk).exists()


# Bad input writes nothing -------------------------------------------------------------

BAD_POINTS = [0, -5, 1.5, "10", True, None]


def earn_bad(member, lot, points):
    ledger.earn(member=member, key="earn:9999:1", points=points, now=T0)


def redeem_bad(member, lot, points):
    ledger.redeem(member=member, key="reward:bad", points=points, now=T0)


def hold_bad(member, lot, points):
    holds.hold_points(member=member, basket_id=99, points=points, now=T0)


def reverse_bad(member, lot, points):
    ledger.reverse_lot(lot=lot, key="reverse:bad:1", points=points, now=T0)


def adjust_bad(member, lot, points):
    ledger.adjust(
        member=member, points=points, reason="Typo", actor=ledger.SYSTEM, now=T0
    )


SERVICES_TAKING_POINTS = {
    "earn": earn_bad,
    "redeem": redeem_bad,
    "hold_points": hold_bad,
    "reverse_lot": reverse_bad,
    "adjust": adjust_bad,
}


@pytest.mark.parametrize(
    ("service", "points"),
    [
        (name, points)
        for name in SERVICES_TAKING_POINTS
        for points in BAD_POINTS
        # Negative points are how staff take points away, not bad input.
        if not (name == "adjust" and points == -5)
    ],
    ids=repr,
)
def test_points_that_are_not_a_positive_whole_number_are_refused_and_write_nothing(
    member, service, points
):
    lot = earned_lot(member, 100)
    earned_lot(member, 50, order="1002", confirm=False)
    holds.hold_points(member=member, basket_id=1, points=10, now=T0)
    before = ledger_snapshot()

    with pytest.raises(InvalidPoints):
        SERVICES_TAKING_POINTS[service](member, lot, points)

    assert ledger_snapshot() == before
    assert find_drift() == []


# The database keeps the invariants too ------------------------------------------------


def break_available(member, lot):
    Member.objects.filter(pk=member.pk).update(available=-1)


def hold_more_than_available(member, lot):
    Member.objects.filter(pk=member.pk).update(held=F("available") + 1)


def break_pending(member, lot):
    Member.objects.filter(pk=member.pk).update(pending=-1)


def break_lifetime(member, lot):
    Member.objects.filter(pk=member.pk).update(lifetime_earned=-1)


def overfill_lot(member, lot):
    Lot.objects.filter(pk=lot.pk).update(remaining=F("points") + 1)


def reverse_more_than_the_lot(member, lot):
    Lot.objects.filter(pk=lot.pk).update(reversed=F("points") + 1)


def activate_without_expiry(member, lot):
    Lot.objects.filter(pk=lot.pk).update(expires_at=None)


def empty_entry(member, lot):
    Entry.objects.create(posting=Posting.objects.first(), member=member, lot=lot)


def duplicate_key(member, lot):
    Posting.objects.create(key=Posting.objects.first().key, kind="earn", member=member)


def second_active_hold_for_a_basket(member, lot):
    Hold.objects.create(member=member, basket_id=1, points=1, expires_at=T0)


def negative_shortfall(member, lot):
    Posting.objects.filter(pk=Posting.objects.first().pk).update(shortfall=-1)


@pytest.mark.parametrize(
    "corrupt",
    [
        break_available,
        hold_more_than_available,
        break_pending,
        break_lifetime,
        overfill_lot,
        reverse_more_than_the_lot,
        activate_without_expiry,
        empty_entry,
        duplicate_key,
        second_active_hold_for_a_basket,
        negative_shortfall,
    ],
    ids=lambda corrupt: corrupt.__name__,
)
def test_the_database_refuses_rows_that_break_the_ledgers_invariants(member, corrupt):
    lot = earned_lot(member, 100)
    holds.hold_points(member=member, basket_id=1, points=10, now=T0)

    with pytest.raises(IntegrityError), transaction.atomic():
        corrupt(member, lot)

    assert find_drift() == []


# check_loyalty_ledger -----------------------------------------------------------------


def run_check(*args):
    out, err = StringIO(), StringIO()
    call_command("check_loyalty_ledger", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_ledger_check_calls_a_healthy_ledger_consistent(member):
    earned_lot(member, 100)
    ledger.redeem(member=member, points=30, key="reward:1", now=T0)

    out, err = run_check()

    assert "consistent" in out
    assert err == ""


def test_the_ledger_check_names_a_drifted_member_and_both_figures(member, other_member):
    earned_lot(member, 100, order="1001")
    earned_lot(other_member, 100, order="1002")
    Member.objects.filter(pk=member.pk).update(available=F("available") + 7)
    err = StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("check_loyalty_ledger", stdout=StringIO(), stderr=err)

    assert exited.value.code == 1
    report = err.getvalue()
    assert f"member available vs lots #{member.pk}: cached 107, ledger says 100" in (
        report
    )
    assert f"member available vs entries #{member.pk}: cached 107" in report
    assert f"#{other_member.pk}" not in report
    assert "2 drift(s) found" in report
    assert "consistent" not in report


def test_the_ledger_check_of_one_healthy_member_ignores_the_others(
    member, other_member
):
    earned_lot(member, 100, order="1001")
    earned_lot(other_member, 100, order="1002")
    Member.objects.filter(pk=member.pk).update(available=F("available") + 7)

    out, err = run_check("--member", str(other_member.pk))

    assert "consistent" in out
    assert err == ""


def test_find_drift_notices_a_lot_whose_remainder_disagrees_with_its_entries(
    member,
):
    lot = earned_lot(member, 100)
    Lot.objects.filter(pk=lot.pk).update(remaining=90)

    problems = find_drift()

    assert {(p.what, p.object_id, p.cached, p.expected) for p in problems} >= {
        ("lot remaining vs entries", lot.pk, 90, 100),
        ("member available vs lots", member.pk, 100, 90),
    }


def test_expiry_dates_come_from_the_same_rule_everywhere(member, policy):
    # An adjustment's lot and a confirmed lot made at the same moment expire together.
    policy.OSCAR_LOYALTY_EXPIRY_ROUNDING = "year_end"
    lot = earned_lot(member, 10)
    ledger.adjust(
        member=member, points=5, reason="Welcome", actor=ledger.SYSTEM, now=T0
    )

    adjusted = Lot.objects.get(source=Lot.Source.ADJUST)

    assert adjusted.expires_at == lot.expires_at == rules.expiry_for(T0)
    assert find_drift() == []


@pytest.mark.parametrize(
    ("field", "sources"),
    [
        ("available", {"lots", "entries"}),
        ("pending", {"lots", "entries"}),
        ("held", {"holds"}),
        ("lifetime_earned", {"lots"}),
    ],
)
def test_find_drift_notices_each_cached_figure_of_a_member(
    member, other_member, field, sources
):
    earned_lot(member, 100, order="1001")
    earned_lot(other_member, 100, order="1002")
    holds.hold_points(member=member, basket_id=1, points=10, now=T0)
    Member.objects.filter(pk=member.pk).update(**{field: F(field) + 3})

    problems = find_drift()

    label = field.replace("_", " ")
    assert {(p.what, p.object_id) for p in problems} == {
        (f"member {label} vs {source}", member.pk) for source in sources
    }
