"""The tier's points multiplier: on the order, the product page and the basket.

Through Oscar's real catalogue, basket and checkout: a member of a ×1.5 tier earns
half as many points again, rule multipliers and the tier's multiply, and every page
promises what the order then earns.
"""

from decimal import Decimal

import pytest

from oscar_loyalty import rules_lookup
from oscar_loyalty.models import Member, Tier
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import add_to_basket
from tests.factories import ProductFactory
from tests.test_earn_rules import make_range, make_rule
from tests.test_product_points import basket_of, check_out, earned, page

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold(db):
    return Tier.objects.create(
        code="gold", name="Gold", rank=2, threshold=5000, points_multiplier="1.5"
    )


@pytest.fixture
def shopper(client):
    from tests.factories import CountryFactory, UserFactory

    CountryFactory()
    user = UserFactory()
    client.force_login(user)
    return user


def join(user, tier):
    member = get_or_create_member(user)
    Member.objects.filter(pk=member.pk).update(tier=tier)


def test_a_gold_member_earns_half_as_many_points_again(client, shopper, gold):
    join(shopper, gold)
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))
    add_to_basket(client, tea)

    assert earned(check_out(client)) == [(150, "base")]


def test_rule_and_tier_multipliers_multiply_and_round_once(client, shopper, gold):
    join(shopper, gold)
    tea = ProductFactory(stockrecord__price=Decimal("9.99"))
    rule = make_rule(make_range("Tea", products=[tea]), 2)
    add_to_basket(client, tea)

    # 9.99 × 2 × 1.5 = 29.97 → 29 (floor, once), not floor(9.99 × 2) × 1.5 = 28.
    assert earned(check_out(client)) == [(29, rule.code)]


def test_a_member_without_a_tier_earns_the_base_rate(client, shopper, gold):
    get_or_create_member(shopper)
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))
    add_to_basket(client, tea)

    assert earned(check_out(client)) == [(100, "base")]


def test_the_product_page_shows_a_gold_member_their_tier_points(client, shopper, gold):
    join(shopper, gold)
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))

    assert "Earn 150 points" in page(client, tea)


def test_guests_are_shown_the_base_points(client, gold):
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))

    assert "100 points" in page(client, tea)
    assert "150 points" not in page(client, tea)


def test_the_basket_promises_what_the_gold_order_then_earns(client, shopper, gold):
    join(shopper, gold)
    tea = ProductFactory(stockrecord__price=Decimal("100.00"))
    add_to_basket(client, tea, quantity=2)

    promised = rules_lookup.basket_points(basket_of(shopper))

    assert promised == 300
    assert earned(check_out(client)) == [(300, "base")]
