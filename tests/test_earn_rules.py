"""Earn rules: product and category multipliers through Oscar ranges.

Orders go through Oscar's real checkout; ranges, categories and parent/child
products are real Oscar rows. The set-based lookup is also checked against Oscar's
own ``Range.contains_product`` for every product and range of a small catalogue.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oscar.core.loading import get_class, get_model

from oscar_loyalty import earning, rules_lookup
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import EarnRule, Lot, Member
from oscar_loyalty.services import orders
from tests.checkout import add_to_basket, place_order
from tests.factories import (
    CountryFactory,
    PartnerFactory,
    ProductClassFactory,
    ProductFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

Category = get_model("catalogue", "Category")
Product = get_model("catalogue", "Product")
ProductCategory = get_model("catalogue", "ProductCategory")
Range = get_model("offer", "Range")
StockRecord = get_model("partner", "StockRecord")
EventHandler = get_class("order.processing", "EventHandler")
PaymentEventType = get_model("order", "PaymentEventType")


@pytest.fixture
def shopper(client):
    CountryFactory()
    user = UserFactory()
    client.force_login(user)
    return user


def make_range(name, *, products=(), categories=(), classes=(), **fields):
    product_range = Range.objects.create(name=name, **fields)
    for product in products:
        product_range.add_product(product)
    product_range.included_categories.add(*categories)
    product_range.classes.add(*classes)
    return product_range


def make_rule(product_range, multiplier, **fields):
    return EarnRule.objects.create(
        name=f"×{multiplier} on {product_range.name}",
        range=product_range,
        multiplier=Decimal(str(multiplier)),
        **fields,
    )


def in_category(product, category):
    ProductCategory.objects.create(product=product, category=category)
    return product


def child_of(parent, *, price=Decimal("88.00"), title="Tin, 100 g"):
    child = Product.objects.create(
        structure=Product.CHILD, parent=parent, title=title, is_public=True
    )
    StockRecord.objects.create(
        product=child,
        partner=PartnerFactory(),
        partner_sku=f"SKU-{child.pk}",
        price_currency="CNY",
        price=price,
        num_in_stock=100,
    )
    return child


def a_parent(title="Oolong tea"):
    return Product.objects.create(
        structure=Product.PARENT,
        title=title,
        product_class=ProductClassFactory(),
        is_public=True,
    )


def lots_of(order):
    """(line's product id, points, rule, version) of each lot the order earned."""
    products = dict(order.lines.values_list("pk", "product_id"))
    return sorted(
        (products[lot.order_line_id], lot.points, lot.rule, lot.rule_version)
        for lot in Lot.objects.filter(order_number=order.number)
    )


# The pure arithmetic --------------------------------------------------------------


def test_the_multiplier_is_rounded_once_with_the_rate(settings):
    settings.OSCAR_LOYALTY_EARN_RATE = "1"
    # floor(9.99 × 1.5) = 14, not floor(9.99) × 1.5 = 13.5.
    assert earning.points_for_amount(Decimal("9.99"), multiplier=Decimal("1.5")) == 14
    settings.OSCAR_LOYALTY_EARN_RATE = "0.1"
    assert earning.points_for_amount(Decimal("88"), multiplier=Decimal("2.5")) == 22
    settings.OSCAR_LOYALTY_EARN_ROUNDING = "ceil"
    assert earning.points_for_amount(Decimal("88"), multiplier=Decimal("2.51")) == 23


def test_lines_record_the_rule_that_earned_them():
    double = earning.Rule("rule:7", 3, Decimal("2"))
    lines = earning.order_line_points(
        [(1, Decimal("10"), Decimal("11")), (2, Decimal("5"), Decimal("6"))],
        order_total=Decimal("15"),
        includes_tax=False,
        minimum=0,
        rules={1: double},
    )
    assert lines == [
        earning.LinePoints(1, 20, "rule:7", 3),
        earning.LinePoints(2, 5, earning.BASE_RULE, 0),
    ]


def test_the_highest_multiplier_wins_and_the_first_wins_a_tie():
    first = earning.Rule("rule:1", 1, Decimal("2"))
    second = earning.Rule("rule:2", 1, Decimal("2"))
    triple = earning.Rule("rule:3", 1, Decimal("3"))
    assert earning.best_rule([first, triple, second]) == triple
    assert earning.best_rule([first, second]) == first
    assert earning.best_rule([]) == earning.BASE


# Rules applied at checkout ---------------------------------------------------------


def test_a_range_of_included_products_multiplies_their_points(client, shopper):
    tea = ProductFactory()
    cup = ProductFactory(stockrecord__price=Decimal("39.90"))
    rule = make_rule(make_range("Tea", products=[tea]), 2)

    add_to_basket(client, cup)
    order = place_order(client, tea)

    assert lots_of(order) == sorted(
        [(tea.pk, 176, rule.code, 1), (cup.pk, 39, earning.BASE_RULE, 0)]
    )
    assert Member.objects.get(user=shopper).pending == 176 + 39
    assert find_drift() == []


def test_a_category_range_covers_products_in_its_subcategories(client, shopper):
    tea = Category.add_root(name="Tea")
    green = tea.add_child(name="Green tea")
    sencha = in_category(ProductFactory(), green)
    other = in_category(ProductFactory(), Category.add_root(name="Teaware"))
    rule = make_rule(make_range("All tea", categories=[tea]), Decimal("1.5"))

    add_to_basket(client, other)
    order = place_order(client, sencha)

    assert lots_of(order) == sorted(
        [(sencha.pk, 132, rule.code, 1), (other.pk, 88, earning.BASE_RULE, 0)]
    )


def test_a_product_class_range_covers_its_products(client, shopper):
    gift = ProductClassFactory(name="Gift cards")
    card = ProductFactory(product_class=gift)
    rule = make_rule(make_range("Gifts", classes=[gift]), 3)

    order = place_order(client, card)

    assert lots_of(order) == [(card.pk, 264, rule.code, 1)]


def test_an_excluded_product_earns_the_base_rate(client, shopper):
    tea = Category.add_root(name="Tea")
    sencha = in_category(ProductFactory(), tea)
    sample = in_category(ProductFactory(), tea)
    product_range = make_range("Tea but samples", categories=[tea])
    product_range.excluded_products.add(sample)
    rule = make_rule(product_range, 2)

    add_to_basket(client, sample)
    order = place_order(client, sencha)

    assert lots_of(order) == sorted(
        [(sencha.pk, 176, rule.code, 1), (sample.pk, 88, earning.BASE_RULE, 0)]
    )


def test_an_everything_range_leaves_out_excluded_categories(client, shopper):
    sale = Category.add_root(name="Sale")
    clearance = in_category(ProductFactory(), sale.add_child(name="Clearance"))
    tea = ProductFactory()
    product_range = make_range("Everything", includes_all_products=True)
    product_range.excluded_categories.add(sale)
    rule = make_rule(product_range, 2)

    add_to_basket(client, clearance)
    order = place_order(client, tea)

    assert lots_of(order) == sorted(
        [(tea.pk, 176, rule.code, 1), (clearance.pk, 88, earning.BASE_RULE, 0)]
    )


def test_a_child_product_earns_by_its_parents_range(client, shopper):
    oolong = a_parent()
    tin = child_of(oolong)
    rule = make_rule(make_range("Oolong", products=[oolong]), 2)

    order = place_order(client, tin)

    assert lots_of(order) == [(tin.pk, 176, rule.code, 1)]


def test_a_child_of_an_excluded_parent_earns_the_base_rate(client, shopper):
    tea = Category.add_root(name="Tea")
    oolong = in_category(a_parent(), tea)
    tin = child_of(oolong)
    product_range = make_range("Tea", categories=[tea])
    product_range.excluded_products.add(oolong)
    make_rule(product_range, 2)

    order = place_order(client, tin)

    assert lots_of(order) == [(tin.pk, 88, earning.BASE_RULE, 0)]


def test_the_highest_multiplier_of_the_rules_holding_a_product_wins(client, shopper):
    tea = Category.add_root(name="Tea")
    sencha = in_category(ProductFactory(), tea)
    make_rule(make_range("Tea", categories=[tea]), Decimal("1.5"))
    best = make_rule(make_range("Sencha", products=[sencha]), 3)
    make_rule(make_range("Everything", includes_all_products=True), 2)

    order = place_order(client, sencha)

    assert lots_of(order) == [(sencha.pk, 264, best.code, 1)]


def test_inactive_and_out_of_window_rules_are_ignored(client, shopper):
    tea = ProductFactory()
    tea_range = make_range("Tea", products=[tea])
    now = timezone.now()
    make_rule(tea_range, 5, is_active=False)
    make_rule(tea_range, 4, starts_at=now + timedelta(days=1))
    make_rule(tea_range, 3, ends_at=now - timedelta(seconds=1))
    current = make_rule(
        tea_range, 2, starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=1)
    )

    order = place_order(client, tea)

    assert lots_of(order) == [(tea.pk, 176, current.code, 1)]


def test_rules_in_force_when_the_order_was_placed_apply_to_a_late_award(shopper):
    tea = ProductFactory()
    placed = timezone.now() - timedelta(days=10)
    rule = make_rule(
        make_range("Tea", products=[tea]),
        2,
        starts_at=placed - timedelta(days=1),
        ends_at=placed + timedelta(days=1),
    )

    found = rules_lookup.rules_for_products([tea.pk], at=placed)

    assert found == {tea.pk: earning.Rule(rule.code, 1, Decimal("2"))}
    assert rules_lookup.rules_for_products([tea.pk]) == {}


def test_a_refund_reverses_what_the_line_earned_even_after_the_rule_changed(
    client, shopper
):
    tea = ProductFactory()
    rule = make_rule(make_range("Tea", products=[tea]), 2)
    order = place_order(client, tea, quantity=2)
    assert lots_of(order) == [(tea.pk, 352, rule.code, 1)]
    for status in ("Being processed", "Shipped", "Complete"):
        order.set_status(status)

    rule.multiplier, rule.version = Decimal("3"), 2
    rule.save()
    later = place_order(client, tea)
    refund, _ = PaymentEventType.objects.get_or_create(
        code="refund", defaults={"name": "Refund"}
    )
    EventHandler().create_payment_event(
        order, refund, Decimal("88.00"), [order.lines.get()], [1]
    )

    assert lots_of(later) == [(tea.pk, 264, rule.code, 2)]
    lot = Lot.objects.get(order_number=order.number)
    assert (lot.points, lot.reversed, lot.rule_version) == (352, 176, 1)
    member = Member.objects.get(user=shopper)
    assert (member.available, member.pending) == (352 - 176, 264)
    assert find_drift() == []


# A fixed number of queries -------------------------------------------------------


def count_award_queries(order, number):
    """Queries of awarding ``order`` again under a fresh order number."""
    order.number = number
    with CaptureQueriesContext(connection) as queries:
        assert orders.award_order(order) > 0
    return len(queries)


def test_awarding_costs_the_same_queries_for_more_lines_and_rules(client, shopper):
    products = [ProductFactory() for _ in range(5)]
    make_rule(make_range("First", products=products[:1]), 2)
    one_line = place_order(client, products[0])
    for product in products[:4]:
        add_to_basket(client, product)
    five_lines = place_order(client, products[4])
    assert five_lines.lines.count() == 5

    few = count_award_queries(one_line, "AGAIN-1")
    many = count_award_queries(five_lines, "AGAIN-5")
    tea = Category.add_root(name="Tea")
    for index, product in enumerate(products):
        in_category(product, tea)
        make_rule(make_range(f"Rule {index}", products=[product]), 2 + index)
    make_rule(make_range("Tea", categories=[tea]), Decimal("1.5"))
    make_rule(make_range("Everything", includes_all_products=True), Decimal("1.2"))
    many_rules = count_award_queries(five_lines, "AGAIN-5-RULES")

    assert few == many == many_rules
    # The lines' query says which rules hold them: one more query than without
    # rules (9 without savepoints), and no more than the earlier bound.
    assert many_rules <= 10
    lots = Lot.objects.filter(order_number="AGAIN-5-RULES")
    assert sorted(lots.values_list("points", flat=True)) == [
        88 * multiplier for multiplier in (2, 3, 4, 5, 6)
    ]


def test_without_rules_awarding_reads_the_rules_once(client, shopper):
    order = place_order(client, ProductFactory())
    order.number = "AGAIN"
    with CaptureQueriesContext(connection) as queries:
        orders.award_order(order)
    rule_reads = [
        query
        for query in queries.captured_queries
        if "oscar_loyalty_earnrule" in query["sql"] or "offer_range" in query["sql"]
    ]
    assert len(rule_reads) == 1


# The set-based lookup against Oscar's own answer --------------------------------


def test_the_lookup_agrees_with_oscars_range_contains_product():
    tea = Category.add_root(name="Tea")
    green = tea.add_child(name="Green")
    sencha_category = green.add_child(name="Sencha")
    ware = Category.add_root(name="Teaware")
    goods = ProductClassFactory()
    gifts = ProductClassFactory(name="Gifts")

    standalone = in_category(ProductFactory(), sencha_category)
    pot = in_category(ProductFactory(), ware)
    card = ProductFactory(product_class=gifts)
    plain = ProductFactory()
    oolong = in_category(a_parent(), green)
    oolong_tin = child_of(oolong)
    oolong_sample = child_of(oolong, title="Sample")
    kettle = in_category(a_parent("Kettle"), ware)
    kettle_small = child_of(kettle, title="Small")
    catalogue = [
        standalone,
        pot,
        card,
        plain,
        oolong,
        oolong_tin,
        oolong_sample,
        kettle,
        kettle_small,
    ]

    ranges = [
        make_range("Included products", products=[pot, oolong]),
        make_range("Included child", products=[kettle_small]),
        make_range("Tea tree", categories=[tea]),
        make_range("Green only", categories=[green]),
        make_range("Goods class", classes=[goods]),
        make_range("Gifts class", classes=[gifts]),
        make_range("Everything", includes_all_products=True),
        make_range("Empty"),
    ]
    ranges[0].excluded_products.add(oolong_sample)
    ranges[2].excluded_products.add(oolong)
    ranges[2].excluded_categories.add(green)  # ignored: not an everything range
    ranges[4].excluded_products.add(kettle)
    all_but = make_range("Everything but", includes_all_products=True)
    all_but.excluded_products.add(plain, oolong)
    all_but.excluded_categories.add(green)
    ranges.append(all_but)
    all_but_ware = make_range("Everything but ware", includes_all_products=True)
    all_but_ware.excluded_categories.add(ware)
    ranges.append(all_but_ware)
    # Oscar excludes only the listed product itself from an everything range, not
    # its children.
    all_but_oolong = make_range("Everything but oolong", includes_all_products=True)
    all_but_oolong.excluded_products.add(oolong)
    ranges.append(all_but_oolong)

    found = rules_lookup.products_in_ranges(
        [product.pk for product in catalogue], ranges
    )

    for product_range in ranges:
        product_range = Range.objects.get(pk=product_range.pk)
        expected = {
            product.pk
            for product in catalogue
            if product_range.contains_product(product)
        }
        assert found[product_range.pk] == expected, product_range.name


def test_looking_up_no_products_or_no_rules_reads_nothing(
    django_assert_num_queries,
):
    product_range = make_range("Any", includes_all_products=True)
    with django_assert_num_queries(0):
        assert rules_lookup.rules_for_products([]) == {}
        assert rules_lookup.rules_for_products([None]) == {}
        assert rules_lookup.products_in_ranges([], [product_range]) == {
            product_range.pk: set()
        }
