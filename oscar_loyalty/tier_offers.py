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

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext as _
from oscar.core.loading import get_model

from . import rules_lookup

ConditionalOffer = get_model("offer", "ConditionalOffer")
Benefit = get_model("offer", "Benefit")
Range = get_model("offer", "Range")

#: Tier offers apply before ordinary ones of priority 0 (and well before points).
TIER_OFFER_PRIORITY = 100
ALL_PRODUCTS_RANGE = "All products (loyalty tiers)"
CONDITION_PATH = f"{__package__}.models.TierCondition"


def offer_name(tier, kind):
    """The offer's name, in the shop's language (``LANGUAGE_CODE``): Oscar stores
    it and shows it in baskets, orders and its offer list."""
    from .models import TierOffer

    with translation.override(settings.LANGUAGE_CODE):
        if kind == TierOffer.Kind.DISCOUNT:
            percent = Decimal(str(tier.discount_percent)).normalize()
            return _("%(tier)s member −%(percent)s%%") % {
                "tier": tier.name,
                "percent": f"{percent:f}",
            }
        return _("%(tier)s member free shipping") % {"tier": tier.name}


def offer_description(tier):
    """The tier's description as HTML-safe text: Oscar shows offer descriptions
    unescaped on its public offer pages."""
    return escape(tier.description)


def _all_products_range():
    """The plugin's private range of every product (answered without queries:
    :class:`oscar_loyalty.ranges.AllProducts`)."""
    from .ranges import ALL_PRODUCTS_PROXY

    found = Range.objects.filter(name=ALL_PRODUCTS_RANGE).first()
    if found is not None:
        if found.proxy_class != ALL_PRODUCTS_PROXY:  # made by an earlier version
            found.proxy_class = ALL_PRODUCTS_PROXY
            found.save(update_fields=["proxy_class"])
        return found
    return Range.objects.create(
        name=ALL_PRODUCTS_RANGE,
        includes_all_products=True,
        is_public=False,
        proxy_class=ALL_PRODUCTS_PROXY,
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
                # Value 0 marks the plugin's own suspension (the tier gives
                # nothing); an offer the owner suspended keeps its value.
                offer.benefit.value = 0
                offer.benefit.save(update_fields=["value"])
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
                description=offer_description(tier),
                offer_type=ConditionalOffer.SITE,
                status=ConditionalOffer.OPEN,
                exclusive=False,
                # its benefit takes all it can at once: no second try
                max_basket_applications=1,
                priority=TIER_OFFER_PRIORITY,
                condition=condition,
                benefit=benefit,
            )
            TierOffer.objects.create(tier=tier, kind=kind, offer=offer)
            continue
        benefit = offer.benefit
        suspended_by_us = (
            offer.status == ConditionalOffer.SUSPENDED and benefit.value == 0
        )
        if benefit.value != value or benefit.type != benefit_type:
            benefit.type = benefit_type
            benefit.value = value
            benefit.save(update_fields=["type", "value"])
        description = offer_description(tier)
        if (offer.name, offer.description) != (name, description):
            offer.name = name
            offer.description = description
            offer.save(update_fields=["name", "description"])
        if suspended_by_us:  # the tier gives this again; the owner's pause stays
            offer.unsuspend()


# At the basket -----------------------------------------------------------------


def _tier_offer_map(basket):
    """{offer id: (kind, tier rank)} of the tier offers Oscar applies now (open and
    within their dates), once per request."""
    cached = getattr(basket, "_loyalty_tier_offers", None)
    if cached is None:
        from .models import TierOffer

        cached = {
            offer_id: (kind, rank)
            for offer_id, kind, rank in TierOffer.objects.filter(
                offer__in=ConditionalOffer.active.values("pk")
            ).values_list("offer_id", "kind", "tier__rank")
        }
        basket._loyalty_tier_offers = cached
    return cached


def offer_applies(offer, basket):
    """Whether ``offer`` is the basket owner's best tier offer of its kind."""
    offers = _tier_offer_map(basket)
    mine = offers.get(offer.pk)
    if mine is None:
        return False
    rank = rules_lookup.basket_tier(basket)[0]
    if rank is None:
        return False
    kind, offer_rank = mine
    best = max((r for k, r in offers.values() if k == kind and r <= rank), default=None)
    return best == offer_rank
