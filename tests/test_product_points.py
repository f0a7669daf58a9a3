"""Points shown before buying: on the product page, and for the basket.

Product pages are fetched through Oscar's real catalogue views, with the plugin's
template override; baskets are real Oscar baskets with Oscar's strategy and offers.
"""

from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.shortcuts import resolve_url
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.http import urlencode
from oscar.core.loading import get_class, get_model

from oscar_loyalty import rules_lookup
from tests.checkout import SHIPPING_ADDRESS, add_to_basket
from tests.factories import CountryFactory, ProductFactory, UserFactory
from tests.test_earn_rules import a_parent, child_of, make_range, make_rule

pytestmark = pytest.mark.django_db

Basket = get_model("basket", "Basket")
Benefit = get_model("offer", "Benefit")
Condition = get_model("offer", "Condition")
ConditionalOffer = get_model("offer", "ConditionalOffer")
Product = get_model("catalogue", "Product")
Lot = get_model("oscar_loyalty", "Lot")
Order = get_model("order", "Order")
Applicator = get_class("offer.applicator", "Applicator")
Selector = get_class("partner.strategy", "Selector")
FixedPrice = get_class("partner.prices", "FixedPrice")


@pytest.fixture
def shopper(client):
    CountryFactory()
    user = UserFactory()
    client.force_login(user)
    return user


def page(client, product):
    response = client.get(product.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


# The product page ------------------------------------------------------------------


def test_the_product_page_shows_the_points_one_item_earns(client, shopper):
    tea = ProductFactory(stockrecord__price=Decimal("88.50"))

    html = page(client, tea)

    assert "Earn 88 points" in html
    assert "loyalty-multiplier" not in html


def test_the_product_page_applies_the_rule_holding_the_product(client, shopper):
    tea = ProductFactory()
    make_rule(make_range("Tea", products=[tea]), Decimal("1.5"))

    html = page(client, tea)

    assert "Earn 132 points" in html
    assert "×1.5 points" in html


def test_guests_are_invited_to_sign_in_to_earn_the_points(client):
    tea = ProductFactory()
    make_rule(make_range("Tea", products=[tea]), 2)

    html = page(client, tea)

    assert "Sign in to earn 176 points" in html
    login = resolve_url(settings.LOGIN_URL)
    next_url = urlencode({"next": tea.get_absolute_url()})
    assert f'href="{login}?{next_url}"' in html


def test_the_owners_rate_and_minimum_order_are_shown(client, shopper, settings):
    settings.OSCAR_LOYALTY_EARN_RATE = "0.5"
    settings.OSCAR_LOYALTY_EARN_MINIMUM_ORDER = "200"

    html = page(client, ProductFactory())

    assert "Earn 44 points" in html
    assert "On orders of" in html


def test_a_parent_product_shows_the_points_from_its_cheapest_variant(client, shopper):
    oolong = a_parent()
    child_of(oolong, price=Decimal("120.00"), title="Large")
    child_of(oolong, price=Decimal("60.00"), title="Small")

    html = page(client, oolong)

    assert "Earn from 60 points" in html


def test_a_product_without_a_price_shows_no_points(client, shopper):
    tea = Product.objects.create(
        title="Not yet on sale", product_class=ProductFactory().product_class
    )

    html = page(client, tea)

    assert "loyalty-product-points" not in html


def test_the_product_page_reads_the_rules_once(client, shopper):
    tea = ProductFactory()
    for index in range(5):
        make_rule(make_range(f"Rule {index}", products=[tea]), 2 + index)

    with CaptureQueriesContext(connection) as queries:
        html = page(client, tea)

    assert "Earn 528 points" in html
    rule_reads = [q for q in queries if "oscar_loyalty_earnrule" in q["sql"]]
    range_reads = [q for q in queries if '"offer_rangeproduct"' in q["sql"]]
    assert (len(rule_reads), len(range_reads)) == (1, 1)


def test_what_earns_is_the_price_incl_or_excl_tax_as_the_owner_chose(settings):
    taxed = FixedPrice("CNY", Decimal("100.00"), tax=Decimal("13.00"))
    untaxed = FixedPrice("CNY", Decimal("100.00"))  # tax not known yet

    assert rules_lookup.price_basis(taxed) == Decimal("100.00")
    settings.OSCAR_LOYALTY_EARN_INCLUDES_TAX = True
    assert rules_lookup.price_basis(taxed) == Decimal("113.00")
    assert rules_lookup.price_basis(untaxed) == Decimal("100.00")
    assert rules_lookup.price_basis(None) is None


# The basket ---------------------------------------------------------------------


def basket_of(user):
    basket = Basket.objects.get(owner=user, status=Basket.OPEN)
    basket.strategy = Selector().strategy(user=user)
    Applicator().apply(basket, user)
    return basket


def site_discount(percent):
    """A site offer taking ``percent`` off every product."""
    everything = make_range("Everything on sale", includes_all_products=True)
    ConditionalOffer.objects.create(
        name=f"{percent}% off",
        offer_type=ConditionalOffer.SITE,
        condition=Condition.objects.create(
            range=everything, type=Condition.COUNT, value=1
        ),
        benefit=Benefit.objects.create(
            range=everything, type=Benefit.PERCENTAGE, value=percent
        ),
    )


def check_out(client):
    """Place the basket as it is (``place_order`` would add a product first)."""
    before = set(Order.objects.values_list("pk", flat=True))
    client.post(reverse("checkout:shipping-address"), SHIPPING_ADDRESS, follow=True)
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302
    return Order.objects.exclude(pk__in=before).get()


def earned(order):
    return sorted(
        Lot.objects.filter(order_number=order.number).values_list("points", "rule")
    )


def test_basket_points_are_what_the_order_then_earns(client, shopper):
    tea = ProductFactory()
    cup = ProductFactory(stockrecord__price=Decimal("39.90"))
    rule = make_rule(make_range("Tea", products=[tea]), 2)
    add_to_basket(client, tea, quantity=2)
    add_to_basket(client, cup)

    basket = basket_of(shopper)
    promised = rules_lookup.basket_line_points(basket)

    assert rules_lookup.basket_points(basket) == 352 + 39
    assert sorted((line.points, line.rule) for line in promised) == [
        (39, "base"),
        (352, rule.code),
    ]
    assert earned(check_out(client)) == [(39, "base"), (352, rule.code)]


def test_basket_points_count_prices_after_discounts(client, shopper):
    site_discount(10)
    add_to_basket(client, ProductFactory())

    # 88.00 less 10 % = 79.20, rounded down.
    assert rules_lookup.basket_points(basket_of(shopper)) == 79
    assert earned(check_out(client)) == [(79, "base")]


def test_basket_points_below_the_minimum_order_are_none(client, shopper, settings):
    settings.OSCAR_LOYALTY_EARN_MINIMUM_ORDER = "100"
    add_to_basket(client, ProductFactory())

    assert rules_lookup.basket_points(basket_of(shopper)) == 0


def test_an_empty_basket_earns_nothing_and_reads_nothing(
    shopper, django_assert_num_queries
):
    basket = Basket.objects.create(owner=shopper)
    basket.strategy = Selector().strategy(user=shopper)
    list(basket.all_lines())  # the basket page has read its lines

    with django_assert_num_queries(0):
        assert rules_lookup.basket_points(basket) == 0


def test_basket_points_cost_the_same_queries_for_more_lines(client, shopper):
    products = [ProductFactory() for _ in range(5)]
    make_rule(make_range("Tea", products=products[:2]), 2)
    make_rule(make_range("Everything", includes_all_products=True), Decimal("1.5"))
    add_to_basket(client, products[0])
    small = basket_of(shopper)
    rules_lookup.basket_points(small)  # the basket page has priced its lines
    with CaptureQueriesContext(connection) as one_line:
        assert rules_lookup.basket_points(small) == 176
    for product in products[1:]:
        add_to_basket(client, product)
    large = basket_of(shopper)
    rules_lookup.basket_points(large)
    with CaptureQueriesContext(connection) as five_lines:
        assert rules_lookup.basket_points(large) == 176 * 2 + 132 * 3

    assert len(one_line) == len(five_lines) == 2


def test_templates_can_show_the_basket_points(client, shopper):
    add_to_basket(client, ProductFactory())
    template = Template(
        "{% load loyalty_catalogue %}"
        "{% loyalty_basket_points basket as points %}{{ points }}"
    )

    assert template.render(Context({"basket": basket_of(shopper)})) == "88"
    assert template.render(Context({"basket": Basket()})) == "0"
