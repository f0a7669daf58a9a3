"""The rewards catalogue under real concurrency: several OS processes redeeming at
once.

The last items of stock taken by more members than there are items, one member
redeeming twice at once with points for only one, and one confirmation submitted
twice at once. Each test commits its fixtures, starts its processes together with
:func:`tests.concurrency.run_in_processes` and checks the rows and the ledger
(``find_drift() == []``).

PostgreSQL only: SQLite's row locks are a no-op, so a race there proves nothing.
Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name>``.
"""

from decimal import Decimal

import pytest

from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import LoyaltyError
from oscar_loyalty.models import (
    CouponDesign,
    Member,
    MemberCoupon,
    Reward,
    RewardRedemption,
)
from oscar_loyalty.services import ledger, rewards
from oscar_loyalty.services.members import get_or_create_member
from tests.concurrency import run_in_processes
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MEMBERS = 8
STOCK = 3


# What the child processes run ------------------------------------------------------


def redeem(member_pk, reward_pk, token=None):
    """One redemption: ("ok", redemption id) or ("refused", the error's class)."""
    member = Member.objects.get(pk=member_pk)
    reward = Reward.objects.get(pk=reward_pk)
    try:
        redemption = rewards.redeem_reward(member=member, reward=reward, token=token)
    except LoyaltyError as refusal:
        return ("refused", type(refusal).__name__)
    return ("ok", redemption.pk)


def redeem_each(pairs, reward_pk):
    """Process ``i`` redeems for the ``i``-th member of ``pairs``."""
    import multiprocessing

    index = int(multiprocessing.current_process().name.rpartition("-")[2])
    return redeem(pairs[index], reward_pk)


# The test process ----------------------------------------------------------------


def outcomes_of(func, n, **kwargs):
    outcomes = run_in_processes(func, n, **kwargs)
    assert [outcome.error for outcome in outcomes if not outcome.ok] == []
    return [outcome.value for outcome in outcomes]


def member_with(points):
    member = get_or_create_member(UserFactory())
    ledger.adjust(
        member=member, points=points, reason="gift", actor=ledger.Actor(None, "test")
    )
    return member


@pytest.fixture
def reward(db):
    design = CouponDesign.objects.create(
        name="¥20 voucher",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
    )
    return Reward.objects.create(
        name="¥20 voucher", design=design, points_price=2000, stock=STOCK
    )


def test_the_last_items_of_stock_go_to_as_many_members_as_there_are_items(reward):
    """Eight members with enough points redeem the last three at once: three get
    one, five are told it is out of stock and keep their points.

    ``redeem_reward`` locks the reward row after the member's and checks the
    stock under that lock; without it, all eight would read stock 3 and redeem.
    """
    members = [member_with(2000).pk for _ in range(MEMBERS)]

    outcomes = outcomes_of(redeem_each, MEMBERS, args=(members, reward.pk))

    assert sorted(kind for kind, _ in outcomes).count("ok") == STOCK
    assert [value for kind, value in outcomes if kind == "refused"] == [
        "RewardOutOfStock"
    ] * (MEMBERS - STOCK)
    reward.refresh_from_db()
    assert reward.stock == 0
    assert RewardRedemption.objects.count() == MemberCoupon.objects.count() == STOCK
    spent = Member.objects.filter(pk__in=members, available=0).count()
    assert spent == STOCK
    assert find_drift() == []


def test_one_member_redeeming_twice_at_once_with_points_for_one(reward):
    """Two confirmations (different tokens) of a member with 3,000 points at once:
    one redemption, the other refused for points, never a negative balance.

    The member row is locked first; the second waits and then sees 1,000 points.
    """
    member = member_with(3000)

    outcomes = outcomes_of(redeem, 2, args=(member.pk, reward.pk))

    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"]
    assert ("refused", "InsufficientPoints") in outcomes
    member.refresh_from_db()
    assert member.available == 1000
    assert RewardRedemption.objects.count() == 1
    assert find_drift() == []


def test_one_confirmation_submitted_twice_at_once_is_one_redemption(reward):
    """The same token from two processes at once (a double click): one redemption,
    both get it, the points are spent once.

    The key is looked up under the member's lock, so the second finds the first's.
    """
    member = member_with(5000)

    outcomes = outcomes_of(redeem, 2, args=(member.pk, reward.pk, "same-token"))

    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "ok"
    member.refresh_from_db()
    assert member.available == 3000
    reward.refresh_from_db()
    assert reward.stock == STOCK - 1
    assert find_drift() == []
