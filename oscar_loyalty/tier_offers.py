"""Tier discounts and free shipping as ordinary Oscar offers.

Each tier with a member discount gets a site offer "Gold member −8%" (a percentage
off every discountable product) and each tier with free shipping one "Gold member
free shipping", both with a :class:`~oscar_loyalty.models.TierCondition`. They are
created and updated when the tier is saved (:func:`sync_tier_offers`), suspended
when the tier no longer gives the benefit, and appear in Oscar's offer list where
the owner can change their priority and exclusivity; orders record them as any
offer's discount.
"""

from decimal import Decimal

from django.db import transaction
from oscar.core.loading import get_model

ConditionalOffer = get_model("offer", "ConditionalOffer")
Benefit = get_model("offer", "Benefit")
Range = get_model("offer", "Range")

#: Tier offers apply before ordinary ones of priority 0 (and well before points).
TIER_OFFER_PRIORITY = 100
ALL_PRODUCTS_RANGE = "All products (loyalty tiers)"
CONDITION_PATH = f"{__package__}.models.TierCondition"


def offer_name(tier, kind):
    from .models import TierOffer

    if kind == TierOffer.Kind.DISCOUNT:
        percent = Decimal(str(tier.discount_percent)).normalize()
        return f"{tier.name} member −{percent:f}%"
    return f"{tier.name} member free shipping"


def _all_products_range():
    found = Range.objects.filter(name=ALL_PRODUCTS_RANGE).first()
    if found is not None:
        return found
    return Range.objects.create(
        name=ALL_PRODUCTS_RANGE, includes_all_products=True, is_public=False
    )


def _unique_name(name, offer):
    taken = ConditionalOffer.objects.filter(name=name)
    if offer is not None:
        taken = taken.exclude(pk=offer.pk)
    return f"{name} (loyalty)" if taken.exists() else name


@transaction.atomic
def sync_tier_offers(tier):
    """Create, update or suspend the tier's discount and shipping offers."""
    from .models import TierCondition, TierOffer

    wanted = {
        TierOffer.Kind.DISCOUNT: (
            tier.discount_percent > 0,
            Benefit.PERCENTAGE,
            tier.discount_percent,
        ),
        TierOffer.Kind.SHIPPING: (
            tier.free_shipping,
            Benefit.SHIPPING_PERCENTAGE,
            Decimal(100),
        ),
    }
    links = {link.kind: link for link in TierOffer.objects.filter(tier=tier)}
    for kind, (gives, benefit_type, value) in wanted.items():
        link = links.get(kind)
        offer = link.offer if link else None
        if not gives:
            if offer is not None and offer.status != ConditionalOffer.SUSPENDED:
                offer.suspend()
            continue
        name = _unique_name(offer_name(tier, kind), offer)
        if offer is None:
            condition = TierCondition.objects.create(proxy_class=CONDITION_PATH)
            benefit = Benefit.objects.create(
                type=benefit_type,
                value=value,
                range=_all_products_range()
                if benefit_type == Benefit.PERCENTAGE
                else None,
            )
            offer = ConditionalOffer.objects.create(
                name=name,
                description=tier.description,
                offer_type=ConditionalOffer.SITE,
                status=ConditionalOffer.OPEN,
                exclusive=False,
                priority=TIER_OFFER_PRIORITY,
                condition=condition,
                benefit=benefit,
            )
            TierOffer.objects.create(tier=tier, kind=kind, offer=offer)
            continue
        benefit = offer.benefit
        if benefit.value != value or benefit.type != benefit_type:
            benefit.type = benefit_type
            benefit.value = value
            benefit.save(update_fields=["type", "value"])
        if offer.name != name:
            offer.name = name
            offer.save(update_fields=["name"])
        if offer.status == ConditionalOffer.SUSPENDED:
            offer.unsuspend()


# At the basket -----------------------------------------------------------------


def _tier_offer_map(basket):
    """{offer id: (kind, tier rank)} of every tier offer, once per request."""
    cached = getattr(basket, "_loyalty_tier_offers", None)
    if cached is None:
        from .models import TierOffer

        cached = {
            offer_id: (kind, rank)
            for offer_id, kind, rank in TierOffer.objects.filter(
                offer__status=ConditionalOffer.OPEN
            ).values_list("offer_id", "kind", "tier__rank")
        }
        basket._loyalty_tier_offers = cached
    return cached


def basket_tier_rank(basket):
    """The rank of the basket owner's tier; None for guests and members without."""
    if not hasattr(basket, "_loyalty_tier_rank"):
        rank = None
        owner_id = getattr(basket, "owner_id", None)
        if owner_id is not None:
            from .models import Member

            rank = (
                Member.objects.filter(user_id=owner_id)
                .values_list("tier__rank", flat=True)
                .first()
            )
        basket._loyalty_tier_rank = rank
    return basket._loyalty_tier_rank


def offer_applies(offer, basket):
    """Whether ``offer`` is the basket owner's best tier offer of its kind."""
    offers = _tier_offer_map(basket)
    mine = offers.get(offer.pk)
    if mine is None:
        return False
    rank = basket_tier_rank(basket)
    if rank is None:
        return False
    kind, offer_rank = mine
    best = max((r for k, r in offers.values() if k == kind and r <= rank), default=None)
    return best == offer_rank
