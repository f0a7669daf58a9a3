"""Campaigns as Oscar offers: kept in step with the campaign, applied in the basket,
recorded on orders and reported.

Each campaign has one *site* offer (:func:`sync_campaign`, run when a campaign or
its steps are saved) with a :class:`~oscar_loyalty.models.CampaignCondition` and a
:class:`~oscar_loyalty.models.CampaignBenefit`, open between the campaign's start
and end, so owners also see it in Oscar's offer list and can set its priority and
exclusivity there. A bonus-points campaign also has an earn rule for its audience:
the points are earned with the order's points (and confirmed, refunded and
cancelled with them); the offer shows "×2 points" in the basket and records the
order. The benefit of every kind records the order for the campaign's report
(:func:`record_order`, Oscar's deferred-benefit hook, inside the order's
transaction).
"""

import copy
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _
from oscar.core.loading import get_class, get_model

from . import rules_lookup

logger = logging.getLogger(__name__)

ConditionalOffer = get_model("offer", "ConditionalOffer")
Benefit = get_model("offer", "Benefit")
Condition = get_model("offer", "Condition")
PostOrderAction = get_class("offer.results", "PostOrderAction")
ZERO_DISCOUNT = get_class("offer.results", "ZERO_DISCOUNT")

#: Campaign offers apply after tier offers and before ordinary ones of priority 0.
CAMPAIGN_OFFER_PRIORITY = 80
CONDITION_PATH = f"{__package__}.models.CampaignCondition"
BENEFIT_PATH = f"{__package__}.models.CampaignBenefit"


def _range(campaign):
    from .tier_offers import _all_products_range

    return campaign.range or _all_products_range()


def offer_name(campaign):
    """Unique among Oscar's offers (its name is unique)."""
    taken = ConditionalOffer.objects.filter(name=campaign.name)
    if campaign.offer_id:
        taken = taken.exclude(pk=campaign.offer_id)
    return f"{campaign.name} (#{campaign.pk})" if taken.exists() else campaign.name


def _condition_value(campaign, steps):
    from .models import Campaign

    if campaign.kind == Campaign.Kind.SPEND_SAVE and steps:
        return min(step.threshold for step in steps)
    return Decimal(0)


def _benefit_value(campaign):
    from .models import Campaign

    if campaign.kind == Campaign.Kind.DISCOUNT:
        return campaign.discount_percent
    if campaign.kind == Campaign.Kind.POINTS:
        return campaign.multiplier
    return Decimal(0)


@transaction.atomic
def sync_campaign(campaign):
    """Create or update the campaign's offer (and, for bonus points, its earn
    rule) from the campaign and its steps."""
    from .models import Campaign, CampaignCondition, EarnRule

    steps = list(campaign.steps.all())
    product_range = _range(campaign)
    status = ConditionalOffer.OPEN if campaign.is_active else ConditionalOffer.SUSPENDED
    offer_fields = {
        "name": offer_name(campaign),
        "description": escape(campaign.description),
        "start_datetime": campaign.starts_at,
        "end_datetime": campaign.ends_at,
        "status": status,
    }
    if campaign.offer_id is None:
        condition = CampaignCondition.objects.create(
            proxy_class=CONDITION_PATH,
            range=product_range,
            value=_condition_value(campaign, steps),
        )
        benefit = Benefit.objects.create(
            proxy_class=BENEFIT_PATH,
            range=product_range,
            value=_benefit_value(campaign),
        )
        offer = ConditionalOffer.objects.create(
            offer_type=ConditionalOffer.SITE,
            exclusive=False,
            # its benefit takes all it can at once: no second try
            max_basket_applications=1,
            priority=CAMPAIGN_OFFER_PRIORITY,
            condition=condition,
            benefit=benefit,
            **offer_fields,
        )
        Campaign.objects.filter(pk=campaign.pk).update(offer=offer)
        campaign.offer = offer
    else:
        offer = campaign.offer
        Condition.objects.filter(pk=offer.condition_id).update(
            range=product_range, value=_condition_value(campaign, steps)
        )
        Benefit.objects.filter(pk=offer.benefit_id).update(
            range=product_range, value=_benefit_value(campaign)
        )
        for name, value in offer_fields.items():
            setattr(offer, name, value)
        offer.save(update_fields=list(offer_fields))
    _sync_earn_rule(campaign, product_range, EarnRule)
    return offer


def _sync_earn_rule(campaign, product_range, EarnRule):
    from .models import Campaign

    rule = campaign.earn_rule
    wanted = {
        "name": campaign.name[:128],
        "range": product_range,
        "multiplier": campaign.multiplier,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "is_active": campaign.is_active and campaign.kind == Campaign.Kind.POINTS,
    }
    if rule is None:
        if not wanted["is_active"]:
            return
        rule = EarnRule.objects.create(**wanted)
        Campaign.objects.filter(pk=campaign.pk).update(earn_rule=rule)
        campaign.earn_rule = rule
        return
    changed = [name for name, value in wanted.items() if getattr(rule, name) != value]
    if changed:
        for name in changed:
            setattr(rule, name, wanted[name])
        rule.version += 1  # lots keep the version that earned them
        rule.save(update_fields=[*changed, "version", "updated_at"])


# At the basket -----------------------------------------------------------------


@dataclass
class Info:
    """What the basket needs of one campaign, read once per basket."""

    pk: int
    kind: str
    name: str
    multiplier: Decimal
    ranks: set = field(default_factory=set)  # empty: every tier
    segments: set = field(default_factory=set)
    steps: list = field(default_factory=list)


def _campaigns(basket):
    """{offer id: Info} of the campaigns with an offer; two queries per basket at
    most (the steps only when a spend-X-save-Y campaign exists)."""
    from .models import Campaign, CampaignStep

    cached = getattr(basket, "_loyalty_campaigns", None)
    if cached is not None:
        return cached
    cached = {}
    now = timezone.now()
    # The campaign's own window and switch are its offer's (kept in step); only
    # offers Oscar applies ask, so an offer the owner paused never gets here.
    rows = Campaign.objects.filter(
        is_active=True, starts_at__lte=now, ends_at__gt=now, offer__isnull=False
    ).values_list(
        "pk", "offer_id", "kind", "name", "multiplier", "segments", "tiers__rank"
    )
    by_campaign = {}
    for pk, offer_id, kind, name, multiplier, segments, rank in rows:
        info = cached.get(offer_id)
        if info is None:
            info = cached[offer_id] = by_campaign[pk] = Info(
                pk, kind, name, multiplier, segments=set(segments or ())
            )
        if rank is not None:
            info.ranks.add(rank)
    spend_save = [
        pk for pk, info in by_campaign.items() if info.kind == Campaign.Kind.SPEND_SAVE
    ]
    if spend_save:
        for campaign_id, threshold, amount in CampaignStep.objects.filter(
            campaign_id__in=spend_save
        ).values_list("campaign_id", "threshold", "amount"):
            by_campaign[campaign_id].steps.append((threshold, amount))
    basket._loyalty_campaigns = cached
    return cached


def campaign_of(offer, basket):
    return _campaigns(basket).get(offer.pk)


def in_audience(offer, basket):
    """Whether the basket's owner (a signed-in customer) is in the campaign's
    audience: of one of its tiers (any, when it names none) and in one of its
    segments (any, when it names none; one query for the owner's segments)."""
    from .segment_offers import basket_segments

    info = campaign_of(offer, basket)
    if info is None or not getattr(basket, "owner_id", None):
        return False
    return rules_lookup.in_campaign_audience(
        info.ranks,
        info.segments,
        rules_lookup.basket_tier(basket)[0],
        lambda: basket_segments(basket),
    )


def best_step(steps, value):
    """The saving of the highest step ``value`` reaches (0 below the first)."""
    reached = [amount for threshold, amount in steps if value >= threshold]
    return max(reached, default=Decimal(0))


def apply_benefit(benefit, basket, condition, offer, **kwargs):
    from .models import Campaign

    info = campaign_of(offer, basket)
    if info is None:
        return ZERO_DISCOUNT
    if info.kind == Campaign.Kind.DISCOUNT:
        percentage = get_class("offer.benefits", "PercentageDiscountBenefit")
        return percentage.apply(benefit, basket, condition, offer, **kwargs)
    if info.kind == Campaign.Kind.SPEND_SAVE:
        spent = condition._get_value_of_matches(offer, basket)
        saving = best_step(info.steps, spent)
        if saving <= 0:
            return ZERO_DISCOUNT
        # The offer keeps its benefit's proxy for the request (see offer_cache):
        # the step's saving goes on a copy of it.
        benefit = copy.copy(benefit)
        benefit.value = saving
        absolute = get_class("offer.benefits", "AbsoluteDiscountBenefit")
        return absolute.apply(benefit, basket, condition, offer, **kwargs)
    # Bonus points: the earn rule earns them; here the basket says so.
    if not any(condition.can_apply_condition(line) for line in basket.all_lines()):
        return ZERO_DISCOUNT
    return PostOrderAction(points_message(info))


def points_message(info):
    multiplier = Decimal(info.multiplier).normalize()
    return _("%(campaign)s: ×%(multiplier)s points") % {
        "campaign": info.name,
        "multiplier": f"{multiplier:f}",
    }


def record_order(basket, order, application):
    """Oscar's deferred benefit, run inside the order's transaction: the order
    counts for the campaign's report. Returns the message Oscar stores."""
    from .models import Campaign, CampaignOrder

    offer = application["offer"]
    info = campaign_of(offer, basket)
    if info is None:
        return None
    try:
        # A savepoint, never an error: the shopper may already have paid. The
        # row has no database constraint on the campaign (deleted meanwhile?).
        with transaction.atomic():
            CampaignOrder.objects.get_or_create(
                campaign_id=info.pk,
                order_number=order.number,
                defaults={
                    "user_id": order.user_id,
                    "placed_at": order.date_placed,
                    "revenue": order.total_incl_tax,
                    "discount": application.get("discount") or Decimal(0),
                },
            )
    except Exception:
        logger.exception(
            "Could not record order %s for campaign %s", order.number, info.pk
        )
    if info.kind == Campaign.Kind.POINTS:
        return points_message(info)
    return None


# Reporting ----------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    coupons_issued: int
    coupons_used: int
    orders: int
    revenue: Decimal
    discount: Decimal
    points_cost: int


def report(campaign):
    """What the campaign gave and brought: coupons handed out and used, orders,
    revenue and discount (orders later cancelled left out), and the bonus points
    it cost (the share of its earn rule's points above the base, less reversals).
    Four queries."""
    from .models import Lot, MemberCoupon, OrderActivity

    coupons = MemberCoupon.objects.filter(campaign=campaign).aggregate(
        issued=Count("pk"), used=Count("pk", filter=Q(voucher__num_orders__gt=0))
    )
    cancelled = OrderActivity.objects.filter(cancelled_at__isnull=False).values(
        "order_number"
    )
    orders = campaign.orders.exclude(order_number__in=cancelled).aggregate(
        count=Count("pk"), revenue=Sum("revenue"), discount=Sum("discount")
    )
    points_cost = 0
    if campaign.earn_rule_id:
        earned = Lot.objects.filter(
            rule=campaign.earn_rule.code, source=Lot.Source.EARN
        ).aggregate(points=Sum("points"), reversed=Sum("reversed"))
        net = (earned["points"] or 0) - (earned["reversed"] or 0)
        multiplier = Decimal(campaign.multiplier)
        if multiplier > 1:
            points_cost = int(net * (multiplier - 1) / multiplier)
    return Report(
        coupons_issued=coupons["issued"],
        coupons_used=coupons["used"],
        orders=orders["count"],
        revenue=orders["revenue"] or Decimal(0),
        discount=orders["discount"] or Decimal(0),
        points_cost=points_cost,
    )


def issue_campaign_coupons(campaign, *, now=None):
    """Hand the campaign's coupon to each member of its audience (once each)."""
    from .models import Campaign, Member
    from .services import coupons

    if campaign.coupon_design_id is None:
        return 0
    members = Member.objects.all()
    tier_ids = list(campaign.tiers.values_list("pk", flat=True))
    if tier_ids:
        members = members.filter(tier_id__in=tier_ids)
    if campaign.segments:
        from .scoring import members_in

        members = members_in(members, campaign.segments)
    issued = coupons.issue_to_members(
        campaign.coupon_design,
        members.values_list("pk", flat=True),
        lambda pk: f"campaign:{campaign.pk}:{pk}",
        campaign=campaign,
        now=now,
    )
    Campaign.objects.filter(pk=campaign.pk, coupons_issued_at__isnull=True).update(
        coupons_issued_at=now or timezone.now()
    )
    return issued


def campaigns_due_coupons(now):
    """Running, active campaigns with a coupon that have not handed it out."""
    from .models import Campaign

    return Campaign.objects.filter(
        is_active=True,
        coupon_design__isnull=False,
        coupons_issued_at__isnull=True,
        starts_at__lte=now,
        ends_at__gt=now,
    )


def withdraw(campaign):
    """A deleted campaign's offer is suspended and its earn rule switched off
    (orders keep referring to them)."""
    if campaign.offer_id:
        ConditionalOffer.objects.filter(pk=campaign.offer_id).update(
            status=ConditionalOffer.SUSPENDED
        )
    if campaign.earn_rule_id:
        from .models import EarnRule

        EarnRule.objects.filter(pk=campaign.earn_rule_id).update(is_active=False)
