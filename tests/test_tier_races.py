"""Tier writers at once, in separate processes on PostgreSQL.

Confirmations (each may move the member up), cancellations and the periodic review
run together on one member's orders: nothing deadlocks or fails, the history is one
unbroken chain ending in the member's tier, and the groups match it.
"""

import multiprocessing
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from oscar_loyalty.models import Member, OrderActivity, Tier, TierChange
from oscar_loyalty.services import tiers
from oscar_loyalty.services.members import get_or_create_member
from tests.concurrency import run_in_processes
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 6


def confirm_cancel_or_review(now, order_numbers):
    """Workers 0–3 confirm their share of the orders, 4 cancels every fifth order,
    5 runs the review twice."""
    index = int(multiprocessing.current_process().name.rpartition("-")[2])
    now = parse_datetime(now)
    if index < 4:
        for number in order_numbers[index::4]:
            tiers.confirm_order(order_number=number, now=now)
        return index
    if index == 4:
        for number in order_numbers[::5]:
            tiers.cancel_order(order_number=number, now=now)
        return index
    tiers.review(now=now)
    tiers.review(now=now)
    return index


def test_confirmations_cancellations_and_reviews_at_once_leave_one_story():
    now = timezone.now()
    for code, rank, threshold in (
        ("regular", 0, 0),
        ("silver", 1, 1000),
        ("gold", 2, 3000),
        ("diamond", 3, 6000),
    ):
        Tier.objects.create(
            code=code, name=code.title(), rank=rank, threshold=threshold
        )
    member = get_or_create_member(UserFactory())
    numbers = [f"R{index:03d}" for index in range(40)]
    OrderActivity.objects.bulk_create(
        OrderActivity(
            member=member,
            order_number=number,
            placed_at=now - timedelta(days=2),
            spend=Decimal("200.00"),
        )
        for number in numbers
    )

    outcomes = run_in_processes(
        confirm_cancel_or_review, WORKERS, args=(now.isoformat(), numbers)
    )

    assert [outcome.error for outcome in outcomes] == [None] * WORKERS
    member = Member.objects.select_related("tier").get(pk=member.pk)
    changes = list(
        TierChange.objects.filter(member=member).order_by("created_at", "id")
    )
    assert changes, "the confirmations moved the member up"
    previous = Tier.objects.get(code="regular")
    for change in changes:
        assert change.from_tier == previous
        previous = change.to_tier
    assert previous == member.tier
    groups = set(
        member.user.groups.filter(name__startswith="loyalty:").values_list(
            "name", flat=True
        )
    )
    expected = {
        f"loyalty:{code}"
        for code in Tier.objects.filter(rank__lte=member.tier.rank).values_list(
            "code", flat=True
        )
    }
    assert groups == expected
    # Every order is confirmed or cancelled; the tier is at least what the
    # confirmed, uncancelled spend reaches (moves down wait for the grace).
    counted = tiers.qualifying_value(member, now=now)
    assert member.tier.rank >= tiers.tier_for(counted, tiers.all_tiers()).rank
