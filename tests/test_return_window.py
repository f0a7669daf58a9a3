"""Pending points confirmed when the return window passes (a beat task, set-based).

The job writes what :func:`ledger.confirm_lot` writes, for many lots at once, so
each test checks the ledger the way ``check_loyalty_ledger`` does (``find_drift``)
as well as the lots and balances themselves.
"""

import multiprocessing
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from oscar.core.loading import get_model

from oscar_loyalty import jobs, rules, tasks
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import Entry, Lot, Member, Posting
from oscar_loyalty.services import ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.concurrency import run_in_processes
from tests.factories import CountryFactory, ProductFactory, UserFactory

Order = get_model("order", "Order")

NOW = timezone.now().replace(microsecond=0)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def policy(settings):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = 14
    settings.OSCAR_LOYALTY_EXPIRY_MONTHS = 12
    settings.OSCAR_LOYALTY_EXPIRY_ROUNDING = "none"


def pending_lot(member, points, *, days_ago, key, order_number=""):
    ledger.earn(
        member=member,
        key=key,
        points=points,
        order_number=order_number,
        now=NOW - timedelta(days=days_ago),
    )
    return Lot.objects.get(entries__posting__key=key)


def test_only_lots_past_the_window_are_confirmed():
    member = get_or_create_member(UserFactory())
    old = pending_lot(member, 30, days_ago=20, key="old", order_number="100001")
    edge = pending_lot(member, 5, days_ago=14, key="edge", order_number="100002")
    new = pending_lot(member, 50, days_ago=13, key="new", order_number="100003")

    chunks = tasks.confirm_returned_points(now=NOW.isoformat())

    assert chunks == 1
    member.refresh_from_db()
    assert (member.available, member.pending, member.lifetime_earned) == (35, 50, 85)
    statuses = dict(Lot.objects.values_list("pk", "status"))
    assert statuses == {old.pk: "active", edge.pk: "active", new.pk: "pending"}
    old.refresh_from_db()
    assert old.confirmed_at == NOW
    assert old.expires_at == rules.expiry_for(NOW)
    posting = Posting.objects.get(key=f"confirm:{old.pk}")
    assert (posting.kind, posting.order_number) == ("confirm", "100001")
    assert list(posting.entries.values_list("available_change", "pending_change")) == [
        (30, -30)
    ]
    assert find_drift() == []


def test_running_again_changes_nothing():
    member = get_or_create_member(UserFactory())
    pending_lot(member, 30, days_ago=20, key="old")
    jobs.confirm_returned_lots(now=NOW)
    postings, entries = Posting.objects.count(), Entry.objects.count()

    assert jobs.confirm_returned_lots(now=NOW) == 0
    assert tasks.confirm_returned_points(now=NOW.isoformat()) == 0

    assert (Posting.objects.count(), Entry.objects.count()) == (postings, entries)
    member.refresh_from_db()
    assert (member.available, member.pending) == (30, 0)
    assert find_drift() == []


def test_the_job_writes_what_confirm_lot_writes():
    by_hand = get_or_create_member(UserFactory())
    by_job = get_or_create_member(UserFactory())
    hand_lot = pending_lot(by_hand, 40, days_ago=20, key="hand", order_number="1")
    job_lot = pending_lot(by_job, 40, days_ago=20, key="job", order_number="2")

    ledger.confirm_lot(lot=hand_lot, now=NOW)
    jobs.confirm_returned_lots(now=NOW)

    def written(lot):
        lot.refresh_from_db()
        posting = Posting.objects.get(key=f"confirm:{lot.pk}")
        return (
            lot.status,
            lot.remaining,
            lot.confirmed_at,
            lot.expires_at,
            posting.kind,
            posting.created_at,
            list(posting.entries.values_list("available_change", "pending_change")),
            Member.objects.values_list("available", "pending", "lifetime_earned").get(
                pk=lot.member_id
            ),
        )

    assert written(hand_lot) == written(job_lot)
    assert find_drift() == []


def test_lots_already_confirmed_by_status_are_left_alone():
    member = get_or_create_member(UserFactory())
    lot = pending_lot(member, 30, days_ago=20, key="a")
    earlier = NOW - timedelta(days=3)
    ledger.confirm_lot(lot=lot, now=earlier)

    assert jobs.confirm_returned_lots(now=NOW) == 0

    lot.refresh_from_db()
    assert lot.confirmed_at == earlier
    assert find_drift() == []


def test_a_partly_reversed_pending_lot_confirms_what_is_left():
    member = get_or_create_member(UserFactory())
    lot = pending_lot(member, 30, days_ago=20, key="a")
    ledger.reverse_lot(lot=lot, points=10, key="refund:a")

    assert jobs.confirm_returned_lots(now=NOW) == 1

    member.refresh_from_db()
    assert (member.available, member.pending, member.lifetime_earned) == (20, 0, 20)
    assert find_drift() == []


def test_lots_of_orders_in_a_reverse_status_are_not_confirmed(client):
    from tests.checkout import place_order

    CountryFactory()
    shopper = UserFactory()
    client.force_login(shopper)
    kept = place_order(client, ProductFactory())
    cancelled = place_order(client, ProductFactory())
    # As if the cancellation's receiver had failed: the order is cancelled, its
    # points still pending (the catch-up reverses them, never a confirmation).
    Order.objects.filter(pk=cancelled.pk).update(status="Cancelled")

    assert jobs.confirm_returned_lots(now=timezone.now() + timedelta(days=15)) == 1

    assert Lot.objects.get(order_number=kept.number).status == Lot.Status.ACTIVE
    assert Lot.objects.get(order_number=cancelled.number).status == Lot.Status.PENDING
    assert find_drift() == []


def test_many_lots_and_members_in_chunks(settings):
    settings.OSCAR_LOYALTY_CONFIRM_CHUNK = 3
    members = [get_or_create_member(UserFactory()) for _ in range(4)]
    for index in range(20):
        pending_lot(members[index % 4], index + 1, days_ago=15, key=f"k{index}")

    assert tasks.confirm_returned_points(now=NOW.isoformat()) == 7

    assert not Lot.objects.filter(status=Lot.Status.PENDING).exists()
    assert sum(Member.objects.values_list("available", flat=True)) == 210
    assert find_drift() == []


def test_without_a_return_window_only_statuses_confirm(settings):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = None
    member = get_or_create_member(UserFactory())
    pending_lot(member, 30, days_ago=400, key="a")

    assert tasks.confirm_returned_points() == 0
    assert jobs.confirm_returned_lots(now=NOW) == 0

    assert Lot.objects.get().status == Lot.Status.PENDING


@pytest.mark.parametrize("bad", ["14", -1, 1.5, True])
def test_a_bad_return_window_is_refused_clearly(settings, bad):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = bad
    member = get_or_create_member(UserFactory())
    pending_lot(member, 30, days_ago=400, key="a")

    with pytest.raises(ImproperlyConfigured, match="OSCAR_LOYALTY_CONFIRM_AFTER_DAYS"):
        tasks.confirm_returned_points(now=NOW.isoformat())

    assert Lot.objects.get().status == Lot.Status.PENDING


# Several workers at once (PostgreSQL) -----------------------------------------------


def confirm_at_once(now, order_numbers):
    """Processes 0 and 1 run the job over every lot, as two workers after a double
    beat; process 2 confirms some of the same orders by status meanwhile. Returns
    how many lots the job confirmed, or the postings ``confirm_order`` returned."""
    index = int(multiprocessing.current_process().name.rpartition("-")[2])
    now = parse_datetime(now)
    if index < 2:
        return jobs.confirm_returned_lots(now=now)
    return sum(
        len(ledger.confirm_order(order_number=number, now=now))
        for number in order_numbers
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_and_status_changes_at_once_confirm_each_lot_once():
    members = [get_or_create_member(UserFactory()) for _ in range(10)]
    for index in range(60):
        pending_lot(
            members[index % 10],
            index + 1,
            days_ago=20,
            key=f"k{index}",
            order_number=f"o{index}",
        )
    by_status = [f"o{index}" for index in range(0, 60, 7)]

    outcomes = run_in_processes(confirm_at_once, 3, args=(NOW.isoformat(), by_status))

    assert [outcome.error for outcome in outcomes] == [None] * 3
    # confirm_order also returns postings the job wrote first; the job's workers
    # confirmed what the status change did not.
    by_job = outcomes[0].value + outcomes[1].value
    assert 60 - len(by_status) <= by_job <= 60
    assert Posting.objects.filter(kind=Posting.Kind.CONFIRM).count() == 60
    assert Entry.objects.filter(posting__kind=Posting.Kind.CONFIRM).count() == 60
    assert not Lot.objects.filter(status=Lot.Status.PENDING).exists()
    assert sum(Member.objects.values_list("available", flat=True)) == 60 * 61 // 2
    assert find_drift() == []


def test_an_order_past_its_window_moves_its_member_up_at_once(client):
    """Confirmed by the return window, the order counts: no wait for the review."""
    from decimal import Decimal

    from oscar_loyalty.models import Tier, TierChange
    from tests.checkout import place_order

    Tier.objects.create(code="regular", name="Regular", rank=0, threshold=0)
    silver = Tier.objects.create(code="silver", name="Silver", rank=1, threshold=50)
    CountryFactory()
    shopper = UserFactory()
    client.force_login(shopper)
    order = place_order(client, ProductFactory(stockrecord__price=Decimal("60.00")))
    member = Member.objects.get(user=shopper)
    assert member.tier.code == "regular"

    jobs.confirm_returned_lots(now=order.date_placed + timedelta(days=15))

    member.refresh_from_db()
    assert member.tier == silver
    change = TierChange.objects.get(member=member)
    assert (change.kind, change.to_tier) == (TierChange.Kind.UPGRADE, silver)
