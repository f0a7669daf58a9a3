"""``{% load loyalty_checkout %}``: the points panel of the basket and checkout."""

from django import template
from django.db.models import Sum
from django.db.models.functions import Coalesce
from oscar.core.loading import get_model

from ..conf import loyalty_settings
from ..models import PointsRedemptionBenefit, Posting
from ..offer_cache import prime
from ..redemption import (
    MAX_POINTS,
    POINTS_OFFER_PRIORITY,
    Policy,
    basket_hold_points,
    payable_amount,
    points_offer,
)
from ..rules_lookup import basket_points, shopper_member

ConditionalOffer = get_model("offer", "ConditionalOffer")

register = template.Library()


def _basket_amount(basket):
    """What points could pay for now, worked out as the points offer does.

    Lines Oscar will not discount, and items an exclusive offer took, are left
    out. With no other offer's discount in the basket an unsaved stand-in for the
    points offer does (no query); otherwise Oscar compares the offers' allowed
    combinations, which needs the real offer (None if the owner deleted it:
    then points pay for nothing).
    """
    if basket.offer_applications.offers:
        offer = points_offer()
        if offer is None:
            return 0
        prime(offer, basket)
    else:
        offer = ConditionalOffer(exclusive=False, priority=POINTS_OFFER_PRIORITY)
    return payable_amount(PointsRedemptionBenefit(), basket, offer)


@register.inclusion_tag("oscar_loyalty/partials/points_panel.html", takes_context=True)
def loyalty_points_panel(context, next_url="", show_earn=False):
    """Available points, their value, and the control to apply or remove them.

    With ``show_earn`` (the basket page), also the points the basket earns.
    """
    request = context.get("request")
    basket = context.get("basket") or getattr(request, "basket", None)
    policy = Policy.current()
    panel = {
        "request": request,
        "basket": basket,
        "policy": policy,
        "programme_name": loyalty_settings.PROGRAMME_NAME,
        "share_percent": int(policy.max_share * 100),
        "step_value": policy.value_of(policy.step),
        "next_url": next_url or (request.get_full_path() if request else ""),
        "guest": not (request and request.user.is_authenticated),
    }
    if basket is None or not basket.id or basket.is_empty:
        return panel
    if show_earn:
        panel["earn_points"] = basket_points(basket)
    if panel["guest"]:
        return panel
    member = shopper_member(request.user, basket)
    held = basket_hold_points(basket)
    used = getattr(basket, "_loyalty_points_used", 0) if held else 0
    spendable = (member.spendable + held) if member else 0
    if held:
        cap = getattr(basket, "_loyalty_points_cap", 0)
    else:
        cap = policy.usable(MAX_POINTS, _basket_amount(basket))
    usable = min(policy.to_step(spendable), cap)
    panel.update(
        member=member,
        spendable=spendable,
        spendable_value=policy.value_of(spendable),
        applied=used,
        applied_value=policy.value_of(used),
        usable=usable,
        usable_value=policy.value_of(usable),
        below_minimum=spendable < max(policy.minimum_balance, policy.step),
        minimum=max(policy.minimum_balance, policy.step),
    )
    return panel


@register.simple_tag(takes_context=True)
def loyalty_order_points(context, order):
    """The signed-in shopper's ledger postings for ``order``, oldest first."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or order.user_id != user.pk:
        return []
    return list(
        Posting.objects.of_order(order.number)
        .filter(member__user=user)
        .annotate(
            available_points=Coalesce(Sum("entries__available_change"), 0),
            pending_points=Coalesce(Sum("entries__pending_change"), 0),
        )
        .order_by("created_at", "id")
    )
