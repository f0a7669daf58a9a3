"""``{% load loyalty_coupons %}``: member coupons in words, and the basket's panel.

The words for what a design gives live here (not on the model) because only the
shopper's pages say them: the dashboard shows the design's fields as they are.
"""

from django import template
from django.db.models import Q
from django.utils.translation import gettext as _

from ..models import CouponDesign, MemberCoupon
from ..rules_lookup import shopper_member

register = template.Library()


def _number(value):
    """``10`` for 10.00, ``12.5`` for 12.50: a percentage without trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def coupon_benefit(design, currency=None):
    """What a coupon of ``design`` gives, in words, e.g. "¥20.00 off orders of
    ¥50.00 or more", "10% off", "Free shipping", "One Tea cup free". A product
    design reads its product: select it with the design."""
    from oscar.templatetags.currency_filters import currency as money

    if design.benefit_type == CouponDesign.BenefitType.PRODUCT:
        return _product_benefit(design, currency)
    minimum = design.minimum_spend
    params = {
        "percent": _number(design.value),
        "amount": money(design.value, currency),
        "minimum": money(minimum, currency),
    }
    if design.benefit_type == CouponDesign.BenefitType.SHIPPING:
        if minimum:
            return _("Free shipping on orders of %(minimum)s or more") % params
        return _("Free shipping")
    if design.benefit_type == CouponDesign.BenefitType.FIXED:
        if minimum:
            return _("%(amount)s off orders of %(minimum)s or more") % params
        return _("%(amount)s off") % params
    if minimum:
        return _("%(percent)s%% off orders of %(minimum)s or more") % params
    return _("%(percent)s%% off") % params


def _product_benefit(design, currency):
    from oscar.templatetags.currency_filters import currency as money

    product = design.product
    if product is None:  # deleted from the catalogue since
        return _("A free product")
    params = {
        "product": product.get_title(),
        "minimum": money(design.minimum_spend, currency),
    }
    if design.minimum_spend:
        return _("One %(product)s free on orders of %(minimum)s or more") % params
    return _("One %(product)s free") % params


def basket_coupons(member, basket, now=None):
    """``member``'s coupons they can apply to ``basket`` now, soonest to end
    first: usable, not in the basket yet, and for the member's tier (a tier design
    needs the member in that tier or a higher one). One query."""
    rank = member.tier.rank if member.tier_id else None
    for_tier = Q(design__tier__isnull=True)
    if rank is not None:
        for_tier |= Q(design__tier__rank__lte=rank)
    coupons = (
        MemberCoupon.objects.usable(now)
        .filter(member=member)
        .filter(for_tier)
        .select_related("voucher", "design", "design__product")
        .order_by("voucher__end_datetime", "pk")
    )
    if basket is not None and basket.id:
        coupons = coupons.exclude(voucher__basket=basket.id)
    return coupons


@register.inclusion_tag(
    "oscar_loyalty/partials/basket_coupons.html", takes_context=True
)
def loyalty_basket_coupons(context):
    """The "Your coupons" panel of the basket: nothing for guests, nor for a
    member without a coupon to apply."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"coupons": []}
    basket = context.get("basket") or getattr(request, "basket", None)
    member = shopper_member(user, basket)
    if member is None:
        return {"coupons": []}
    return {
        "request": request,
        "basket": basket,
        "coupons": list(basket_coupons(member, basket)),
        "currency": getattr(basket, "currency", None),
    }
