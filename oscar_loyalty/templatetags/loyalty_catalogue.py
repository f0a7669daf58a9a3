"""``{% load loyalty_catalogue %}``: the points a product or a basket would earn.

The product detail page of the plugin's template override calls
``{% loyalty_product_points product %}``. A shop can use it in its own templates
too, but not in product cards of a listing: the active rules are read once per
request, yet while any rule is active each product costs one more query. A listing
should call :func:`oscar_loyalty.rules_lookup.rules_for_products` once for the page.
"""

from decimal import Decimal

from django import template
from django.conf import settings
from django.shortcuts import resolve_url
from django.utils.http import urlencode

from .. import earning, rules_lookup
from ..conf import loyalty_settings

register = template.Library()


def _purchase_info(request, product):
    """The strategy's price, as Oscar's ``purchase_info_for_product`` asks for it.

    A parent product is priced from its variants (``fetch_for_parent``).
    """
    strategy = getattr(request, "strategy", None)
    if strategy is None:
        return None
    if product.is_parent:
        return strategy.fetch_for_parent(product)
    return strategy.fetch_for_product(product)


def _plain(number):
    """``Decimal("2.00")`` as "2", ``Decimal("1.50")`` as "1.5" (never "1E+1")."""
    return format(number.normalize(), "f")


@register.inclusion_tag(
    "oscar_loyalty/partials/product_points.html", takes_context=True
)
def loyalty_product_points(context, product, purchase_info=None):
    """ "Earn N points" for one item of ``product`` at the request's price.

    ``purchase_info`` is the strategy's answer when the template already has it;
    otherwise it is asked for, as Oscar's own ``purchase_info_for_product`` does.
    Shown to everyone: guests are invited to sign in, since guest orders earn
    nothing. Nothing is shown when the product has no price or earns no points.
    """
    request = context.get("request")
    if purchase_info is None:
        purchase_info = _purchase_info(request, product)
    price = getattr(purchase_info, "price", None)
    points, rule = rules_lookup.product_points(product, price, request=request)
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    login_url = ""
    if not signed_in and request is not None:
        login_url = "{}?{}".format(
            resolve_url(settings.LOGIN_URL),
            urlencode({"next": request.get_full_path()}),
        )
    minimum = Decimal(str(loyalty_settings.EARN_MINIMUM_ORDER))
    return {
        "request": request,
        "product": product,
        "points": points,
        "multiplier": None
        if rule.code == earning.BASE_RULE
        else _plain(rule.multiplier),
        "from_price": product.is_parent,
        "signed_in": signed_in,
        "login_url": login_url,
        "programme_name": loyalty_settings.PROGRAMME_NAME,
        "minimum": minimum if minimum > 0 else None,
        "currency": getattr(price, "currency", None),
    }


@register.simple_tag
def loyalty_basket_points(basket):
    """``{% loyalty_basket_points basket as points %}``: what the basket would earn.

    See :func:`oscar_loyalty.rules_lookup.basket_points`; 0 for an unsaved or
    empty basket.
    """
    if basket is None or not basket.id:
        return 0
    return rules_lookup.basket_points(basket)
