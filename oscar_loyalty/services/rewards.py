"""The rewards catalogue: redeeming points for a coupon, and giving points back for
coupons that expired unused. The only writer of ``RewardRedemption`` rows.

``redeem_reward`` works in one transaction, locking the member first (as every
ledger write does) and then the reward row: the availability, tier, per-member
limit, stock and balance are checked under those locks, then the points are spent
(one ``redeem`` posting), the coupon issued and the stock counted down. Anything
refused raises a :class:`~oscar_loyalty.exceptions.LoyaltyError` and writes
nothing. The idempotency key (the confirmation form's token) makes a double
submission one redemption.
"""

import uuid

from django.db import transaction
from django.utils import timezone
from oscar.core.loading import get_model

from ..exceptions import (
    RewardLimitReached,
    RewardNotForTier,
    RewardOutOfStock,
    RewardPriceChanged,
    RewardUnavailable,
)
from ..models import Lot, MemberCoupon, Posting, Reward, RewardRedemption
from . import coupons, ledger

OrderDiscount = get_model("order", "OrderDiscount")

#: Redemptions per transaction of the refund job.
REFUND_BATCH = 500


def is_available(reward, now):
    return (
        reward.is_active
        and reward.design.is_active
        and (reward.starts_at is None or reward.starts_at <= now)
        and (reward.ends_at is None or reward.ends_at > now)
    )


def tier_allowed(reward, member, allowed_tier_ids=None):
    """Whether the member's tier may redeem (any tier when the reward names none)."""
    if allowed_tier_ids is None:
        allowed_tier_ids = {tier.pk for tier in reward.tiers.all()}
    return not allowed_tier_ids or member.tier_id in allowed_tier_ids


def redemption_key(member, token):
    """Scoped to the member: another member's token can never find this one's."""
    return f"reward:{member.pk}:{token}"


@transaction.atomic
def redeem_reward(*, member, reward, token=None, expected_price=None, now=None):
    """Spend the reward's price and issue its coupon; returns the
    :class:`RewardRedemption` (the existing one when ``token`` was used before).

    ``expected_price``: the price the member confirmed; a price changed since is
    refused (:class:`RewardPriceChanged`), never charged unseen."""
    now = now or timezone.now()
    key = redemption_key(member, token or uuid.uuid4())
    member = ledger.lock_member(member.pk)
    existing = RewardRedemption.objects.filter(key=key).first()
    if existing is not None:
        return existing
    reward = (
        Reward.objects.select_for_update(of=("self",))
        .select_related("design")
        .get(pk=reward.pk)
    )
    if not is_available(reward, now):
        raise RewardUnavailable()
    if expected_price is not None and expected_price != reward.points_price:
        raise RewardPriceChanged(price=reward.points_price)
    tiers = list(reward.tiers.all())
    if not tier_allowed(reward, member, {tier.pk for tier in tiers}):
        raise RewardNotForTier(tiers=", ".join(tier.name for tier in tiers))
    if reward.per_member_limit is not None:
        done = RewardRedemption.objects.filter(reward=reward, member=member).count()
        if done >= reward.per_member_limit:
            raise RewardLimitReached(limit=reward.per_member_limit)
    if reward.stock is not None and reward.stock < 1:
        raise RewardOutOfStock()
    ledger.redeem(
        member=member,
        points=reward.points_price,
        key=key,
        reason=reward.name[:255],
        now=now,
    )
    coupon = coupons.issue_coupon(
        member=member,
        design=reward.design,
        key=key,
        reason=reward.name[:255],
        points_cost=reward.points_price,
        now=now,
        event="reward_redeemed",
        extra={"reward": reward.name, "points": reward.points_price},
    )
    if reward.stock is not None:
        reward.stock -= 1
        Reward.objects.filter(pk=reward.pk).update(stock=reward.stock)
    return RewardRedemption.objects.create(
        reward=reward,
        member=member,
        coupon=coupon,
        points=reward.points_price,
        key=key,
        created_at=now,
    )


def refundable(now):
    """Redemptions of rewards that give points back whose coupon expired unused:
    on no order at all (also a multi-use coupon, and one whose discount an order
    kept although the voucher expired while it was placed)."""
    expired = MemberCoupon.objects.filter(
        voucher__end_datetime__lte=now, voucher__num_orders=0
    ).exclude(
        voucher_id__in=OrderDiscount.objects.filter(voucher_id__isnull=False).values(
            "voucher_id"
        )
    )
    return RewardRedemption.objects.filter(
        refunded_at__isnull=True,
        reward__refund_unused=True,
        coupon__in=expired.values("pk"),
    )


def refund_expired(*, now=None):
    """Give back the points of the coupons bought with points that expired unused
    (where the reward says so), as lots with their old expiry dates; returns how
    many. Idempotent: each redemption's ``refund:`` posting key once, and
    ``refunded_at`` marks it done."""
    now = now or timezone.now()
    refunded = 0
    while True:
        batch = list(refundable(now).order_by("pk")[:REFUND_BATCH])
        if not batch:
            return refunded
        # One ledger posting per member under its lock, as every ledger write;
        # refunds are few (coupons bought and never used).
        done = sum(_refund(redemption.pk, now) for redemption in batch)
        if not done:
            return refunded
        refunded += done


@transaction.atomic
def _refund(redemption_id, now):
    redemption = RewardRedemption.objects.select_related("reward").get(pk=redemption_id)
    ledger.lock_member(redemption.member_id)
    redemption = RewardRedemption.objects.select_for_update().get(pk=redemption_id)
    if redemption.refunded_at is not None:
        return 0
    ledger.give_back(
        redemption_key=redemption.key,
        key=f"refund:{redemption.key}",
        kind=Posting.Kind.REFUND,
        source=Lot.Source.REFUND,
        reason=redemption.reward.name[:255] if redemption.reward_id else "",
        now=now,
    )
    RewardRedemption.objects.filter(pk=redemption_id).update(refunded_at=now)
    return 1
