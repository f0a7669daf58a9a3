"""The rewards catalogue: points bought coupons, checked and written atomically."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import (
    InsufficientPoints,
    RewardLimitReached,
    RewardNotForTier,
    RewardOutOfStock,
    RewardUnavailable,
)
from oscar_loyalty.models import (
    CouponDesign,
    Lot,
    Member,
    MemberCoupon,
    Posting,
    Reward,
    RewardRedemption,
    Tier,
)
from oscar_loyalty.services import ledger, rewards
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import add_to_basket
from tests.factories import ProductFactory, StaffFactory, UserFactory

Voucher = get_model("voucher", "Voucher")


@pytest.fixture
def design(db):
    return CouponDesign.objects.create(
        name="¥20 voucher",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        valid_days=30,
    )


@pytest.fixture
def reward(design):
    return Reward.objects.create(
        name="¥20 voucher for 2,000 points", design=design, points_price=2000, stock=5
    )


def member_with(points, **fields):
    member = get_or_create_member(UserFactory())
    if fields:
        Member.objects.filter(pk=member.pk).update(**fields)
    if points:
        ledger.adjust(
            member=member,
            points=points,
            reason="opening balance",
            actor=ledger.Actor.from_user(StaffFactory()),
        )
    member.refresh_from_db()
    return member


def nothing_written(member, before):
    member.refresh_from_db()
    assert member.available == before
    assert not RewardRedemption.objects.exists()
    assert not MemberCoupon.objects.exists()
    assert not Posting.objects.filter(kind=Posting.Kind.REDEEM).exists()


def test_redeeming_spends_the_points_and_issues_the_coupon(reward):
    member = member_with(2500)

    redemption = rewards.redeem_reward(member=member, reward=reward)

    member.refresh_from_db()
    reward.refresh_from_db()
    assert member.available == 500
    assert reward.stock == 4
    assert redemption.points == 2000
    coupon = redemption.coupon
    assert (coupon.member, coupon.design, coupon.points_cost) == (
        member,
        reward.design,
        2000,
    )
    assert coupon.state() == "usable"
    assert Posting.objects.get(kind=Posting.Kind.REDEEM).key == redemption.key
    assert find_drift() == []


def test_the_same_token_twice_is_one_redemption(reward):
    member = member_with(5000)
    first = rewards.redeem_reward(member=member, reward=reward, token="abc")
    again = rewards.redeem_reward(member=member, reward=reward, token="abc")
    assert first.pk == again.pk
    member.refresh_from_db()
    assert member.available == 3000
    assert MemberCoupon.objects.count() == 1


def test_too_few_points_is_refused_and_writes_nothing(reward):
    member = member_with(1999)
    with pytest.raises(InsufficientPoints):
        rewards.redeem_reward(member=member, reward=reward)
    nothing_written(member, 1999)
    reward.refresh_from_db()
    assert reward.stock == 5


def test_out_of_stock_is_refused(reward):
    Reward.objects.filter(pk=reward.pk).update(stock=0)
    member = member_with(3000)
    with pytest.raises(RewardOutOfStock):
        rewards.redeem_reward(member=member, reward=reward)
    nothing_written(member, 3000)


def test_the_last_item_of_stock_goes_once(reward):
    Reward.objects.filter(pk=reward.pk).update(stock=1)
    first, second = member_with(3000), member_with(3000)
    rewards.redeem_reward(member=first, reward=reward)
    with pytest.raises(RewardOutOfStock):
        rewards.redeem_reward(member=second, reward=reward)
    second.refresh_from_db()
    assert second.available == 3000


def test_unlimited_stock_stays_empty(reward):
    Reward.objects.filter(pk=reward.pk).update(stock=None)
    rewards.redeem_reward(member=member_with(3000), reward=reward)
    reward.refresh_from_db()
    assert reward.stock is None


def test_only_the_rewards_tiers_may_redeem(reward):
    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=100)
    silver = Tier.objects.create(code="silver", name="Silver", rank=1, threshold=10)
    reward.tiers.add(gold)
    member = member_with(3000, tier=silver)
    with pytest.raises(RewardNotForTier) as refused:
        rewards.redeem_reward(member=member, reward=reward)
    assert str(refused.value) == "This reward is for members of these tiers: Gold."
    nothing_written(member, 3000)
    Member.objects.filter(pk=member.pk).update(tier=gold)
    assert rewards.redeem_reward(member=member, reward=reward)


def test_the_per_member_limit(reward):
    Reward.objects.filter(pk=reward.pk).update(per_member_limit=2)
    reward.refresh_from_db()
    member = member_with(10000)
    rewards.redeem_reward(member=member, reward=reward)
    rewards.redeem_reward(member=member, reward=reward)
    with pytest.raises(RewardLimitReached):
        rewards.redeem_reward(member=member, reward=reward)
    member.refresh_from_db()
    assert member.available == 6000
    # Another member has their own allowance.
    assert rewards.redeem_reward(member=member_with(2000), reward=reward)


@pytest.mark.parametrize(
    "change",
    [
        {"is_active": False},
        {"starts_at": timezone.now() + timedelta(days=1)},
        {"ends_at": timezone.now() - timedelta(seconds=1)},
    ],
)
def test_inactive_or_out_of_dates_is_refused(reward, change):
    Reward.objects.filter(pk=reward.pk).update(**change)
    member = member_with(3000)
    with pytest.raises(RewardUnavailable):
        rewards.redeem_reward(member=member, reward=reward)
    nothing_written(member, 3000)


def test_a_design_no_longer_issuing_makes_the_reward_unavailable(reward):
    CouponDesign.objects.filter(pk=reward.design_id).update(is_active=False)
    with pytest.raises(RewardUnavailable):
        rewards.redeem_reward(member=member_with(3000), reward=reward)


def expire(coupon):
    Voucher.objects.filter(pk=coupon.voucher_id).update(
        end_datetime=timezone.now() - timedelta(minutes=1)
    )


def test_points_come_back_when_the_coupon_expires_unused_if_the_owner_chose(reward):
    Reward.objects.filter(pk=reward.pk).update(refund_unused=True)
    member = member_with(2000)
    redemption = rewards.redeem_reward(member=member, reward=reward)
    assert rewards.refund_expired() == 0  # still usable
    expire(redemption.coupon)

    assert rewards.refund_expired() == 1
    assert rewards.refund_expired() == 0  # once

    member.refresh_from_db()
    assert member.available == 2000
    redemption.refresh_from_db()
    assert redemption.refunded_at is not None
    lot = Lot.objects.get(source=Lot.Source.REFUND)
    original = Lot.objects.get(source=Lot.Source.ADJUST)
    assert (lot.points, lot.expires_at) == (2000, original.expires_at)
    assert Posting.objects.filter(kind=Posting.Kind.REFUND).count() == 1
    assert find_drift() == []


def test_no_points_back_without_the_owners_choice_or_for_a_used_coupon(reward):
    member = member_with(4000)
    kept = rewards.redeem_reward(member=member, reward=reward)
    expire(kept.coupon)
    assert rewards.refund_expired() == 0
    Reward.objects.filter(pk=reward.pk).update(refund_unused=True)
    used = rewards.redeem_reward(member=member, reward=reward)
    Voucher.objects.filter(pk=used.coupon.voucher_id).update(num_orders=1)
    expire(used.coupon)
    assert rewards.refund_expired() == 1  # only the unused first one
    assert RewardRedemption.objects.get(refunded_at__isnull=False) == kept


def test_a_product_reward_makes_one_item_free_in_oscars_basket(client, db):
    tea = ProductFactory(title="Tea cup", stockrecord__price=Decimal("35.00"))
    design = CouponDesign.objects.create(
        name="Free tea cup",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.PRODUCT,
        product=tea,
    )
    reward = Reward.objects.create(name="Tea cup", design=design, points_price=3500)
    member = member_with(3500)
    coupon = rewards.redeem_reward(member=member, reward=reward).coupon
    client.force_login(member.user)
    add_to_basket(client, tea, quantity=2)
    client.post(reverse("basket:vouchers-add"), {"code": coupon.voucher.code})

    basket = client.get(reverse("basket:summary")).context["basket"]

    assert [d["discount"] for d in basket.voucher_discounts] == [Decimal("35.00")]
    assert basket.total_incl_tax == Decimal("35.00")


def test_a_multi_use_coupon_used_on_orders_gives_no_points_back(reward):
    CouponDesign.objects.filter(pk=reward.design_id).update(multi_use=True)
    Reward.objects.filter(pk=reward.pk).update(refund_unused=True)
    reward.refresh_from_db()
    redemption = rewards.redeem_reward(member=member_with(2000), reward=reward)
    Voucher.objects.filter(pk=redemption.coupon.voucher_id).update(num_orders=3)
    expire(redemption.coupon)
    assert rewards.refund_expired() == 0


def test_a_price_changed_since_the_member_confirmed_is_refused(reward):
    from oscar_loyalty.exceptions import RewardPriceChanged

    member = member_with(5000)
    Reward.objects.filter(pk=reward.pk).update(points_price=2500)
    reward.refresh_from_db()
    with pytest.raises(RewardPriceChanged):
        rewards.redeem_reward(member=member, reward=reward, expected_price=2000)
    nothing_written(member, 5000)
    assert rewards.redeem_reward(member=member, reward=reward, expected_price=2500)
