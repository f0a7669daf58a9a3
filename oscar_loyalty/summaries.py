"""What the shopper's pages show of their programme, read-only: the tier panel
(tier, badge colours, progress, history) and the rewards as one member sees
them. Shared by the account pages here and by ``wagtail_members``' selectors.
"""

import math
import re
from dataclasses import dataclass

from django.db.models import Count
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from .conf import loyalty_settings
from .exceptions import (
    RewardLimitReached,
    RewardNotForTier,
    RewardOutOfStock,
    RewardUnavailable,
)
from .models import TIER_COLOUR_PATTERN, Member, Reward, RewardRedemption, TierChange
from .services import rewards as reward_service
from .services import tiers as tier_service

#: The member's tier changes shown on the tab (newest first).
TIER_HISTORY = 10
#: A colour the badge may be painted in (as the model validates it; rows
#: written around the model's validation fall back to the default).
HEX_COLOUR = re.compile(TIER_COLOUR_PATTERN)
DEFAULT_COLOUR = "#6c757d"


#: How far ahead "expiring soon" looks on the shopper's pages (the Loyalty tab, the
#: Wagtail member home).
EXPIRING_DAYS = 90


def tier_panel(member, now):
    """The member's tier, what the next one takes and their tier history.

    None when the shop has no tiers (then neither a current nor a next tier).
    A constant number of queries: those of ``progress`` and one for the history.
    """
    progress = tier_service.progress(member, now=now)
    tier, next_tier = progress.tier, progress.next_tier
    if tier is None and next_tier is None:
        return None
    needed = progress.needed
    if progress.basis != "spend":  # points and orders are whole numbers
        needed = math.ceil(needed)
    bar = None
    if next_tier is not None:
        low = tier.threshold if tier is not None else 0
        high = next_tier.threshold
        value = min(max(progress.value, low), high)
        percent = 100 if high <= low else int((value - low) * 100 / (high - low))
        bar = {"min": low, "max": high, "now": value, "percent": percent}
    protected_until = member.tier_protected_until
    if protected_until is not None and protected_until <= now:
        protected_until = None
    colour = tier.colour if tier is not None else ""
    if not HEX_COLOUR.match(colour or ""):
        colour = DEFAULT_COLOUR
    history = (
        TierChange.objects.filter(member=member)
        .select_related("from_tier", "to_tier")
        .order_by("-created_at", "-id")[:TIER_HISTORY]
    )
    return {
        "progress": progress,
        "tier": tier,
        "next_tier": next_tier,
        "needed": needed,
        "calendar_year": progress.window_end is not None,
        "window_months": loyalty_settings.TIER_WINDOW_MONTHS,
        "bar": bar,
        "since": member.tier_since if tier is not None else None,
        "protected_until": protected_until if tier is not None else None,
        "grace_until": member.tier_grace_until if tier is not None else None,
        "colour": colour,
        "text_colour": readable_on(colour),
        "history": list(history),
    }


def readable_on(colour):
    """Black or white, whichever contrasts more with ``colour`` (WCAG)."""
    digits = colour.lstrip("#")

    def linear(channel):
        channel /= 255
        if channel <= 0.03928:
            return channel / 12.92
        return ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(int(digits[i : i + 2], 16)) for i in (0, 2, 4))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    on_black = (luminance + 0.05) / 0.05
    on_white = 1.05 / (luminance + 0.05)
    return "#000000" if on_black >= on_white else "#ffffff"


def own_member(user):
    """The signed-in shopper's member account, or an unsaved empty one (no
    points, no tier) for a shopper who has none yet: reading the catalogue
    creates nothing."""
    try:
        return user.loyalty_member
    except Member.DoesNotExist:
        return Member(user=user)


@dataclass
class RewardOffer:
    """A reward as this member sees it: whether they can redeem it now, and if
    not, why (``refusal``, the words of the service's own refusal)."""

    reward: Reward
    refusal: str = ""
    out_of_stock: bool = False

    @property
    def can_redeem(self):
        return not self.refusal


def refusal(reward, member, redeemed, now):
    """Why ``member`` cannot redeem ``reward`` now ("" when they can), checked in
    the order the service checks: availability, tier, limit, stock, points.
    ``redeemed`` is how many times the member redeemed it. No query: the
    reward's tiers are prefetched."""
    if not reward_service.is_available(reward, now):
        return str(RewardUnavailable())
    tiers = list(reward.tiers.all())
    if not reward_service.tier_allowed(reward, member, {tier.pk for tier in tiers}):
        return str(RewardNotForTier(tiers=", ".join(tier.name for tier in tiers)))
    if reward.per_member_limit is not None and redeemed >= reward.per_member_limit:
        return str(RewardLimitReached(limit=reward.per_member_limit))
    if reward.stock is not None and reward.stock < 1:
        return str(RewardOutOfStock())
    if member.spendable < reward.points_price:
        return _("You need %(points)s more points.") % {
            "points": number_format(
                reward.points_price - member.spendable, force_grouping=True
            )
        }
    return ""


def reward_offers(member, now, rewards=None):
    """The rewards available now (by the service's rule), as :class:`RewardOffer`
    for ``member``. Three queries however many rewards: the rewards with their
    design and product, their tiers, and the member's redemption counts."""
    if rewards is None:
        rewards = Reward.objects.filter(is_active=True, design__is_active=True)
    rewards = [
        reward
        for reward in rewards.select_related("design", "design__product")
        .prefetch_related("tiers")
        .order_by("position", "points_price", "pk")
        if reward_service.is_available(reward, now)
    ]
    counts = {}
    if member.pk is not None and rewards:
        counts = dict(
            RewardRedemption.objects.filter(member=member)
            .values_list("reward")
            .annotate(redeemed=Count("pk"))
            .order_by()
        )
    return [
        RewardOffer(
            reward=reward,
            refusal=refusal(reward, member, counts.get(reward.pk, 0), now),
            out_of_stock=reward.stock is not None and reward.stock < 1,
        )
        for reward in rewards
    ]
