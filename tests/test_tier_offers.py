"""Tier discounts and free shipping: Oscar offers the plugin keeps in step with tiers.

Through Oscar's real basket and checkout: a Gold member sees "Gold member −8%" in
the basket, gets Gold's discount and not Silver's as well, and the order records it.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_class, get_model

from oscar_loyalty.models import Member, Tier, TierCondition, TierOffer
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import add_to_basket, place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

ConditionalOffer = get_model("offer", "ConditionalOffer")
Basket = get_model("basket", "Basket")
Applicator = get_class("offer.applicator", "Applicator")
Repository = get_class("shipping.repository", "Repository")
FixedPrice = get_class("shipping.methods", "FixedPrice")


@pytest.fixture
def tiers(db):
    return {
        code: Tier.objects.create(
            code=code,
            name=name,
            rank=rank,
            threshold=Decimal(threshold),
            discount_percent=Decimal(discount),
            free_shipping=free,
        )
        for code, name, rank, threshold, discount, free in (
            ("regular", "Regular", 0, "0", "0", False),
            ("silver", "Silver", 1, "1000", "5", False),
            ("gold", "Gold", 2, "5000", "8", True),
        )
    }


@pytest.fixture
def product(db):
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


def shopper_in(tier):
    CountryFactory()
    user = UserFactory()
    member = get_or_create_member(user)
    Member.objects.filter(pk=member.pk).update(tier=tier)
    return user


def basket_discounts(client):
    response = client.get(reverse("basket:summary"))
    assert response.status_code == 200
    basket = response.context["basket"]
    return response, {
        str(discount["name"]): discount["discount"]
        for discount in basket.offer_discounts
    }


def test_a_tier_with_a_discount_gets_an_open_site_offer_in_oscars_list(tiers):
    link = TierOffer.objects.get(tier=tiers["gold"], kind=TierOffer.Kind.DISCOUNT)

    offer = link.offer
    assert offer.name == "Gold member −8%"
    assert offer.offer_type == ConditionalOffer.SITE
    assert offer.status == ConditionalOffer.OPEN
    assert not offer.exclusive
    assert offer.max_basket_applications == 1  # the benefit takes all lines at once
    assert isinstance(offer.condition.proxy(), TierCondition)
    assert offer.benefit.value == Decimal("8")
    assert offer in ConditionalOffer.active.all()
    # Regular gives nothing: no offer; Silver no free shipping.
    assert not TierOffer.objects.filter(tier=tiers["regular"]).exists()
    assert list(
        TierOffer.objects.filter(tier=tiers["silver"]).values_list("kind", flat=True)
    ) == [TierOffer.Kind.DISCOUNT]


def test_changing_the_tier_changes_or_suspends_its_offer(tiers):
    gold = tiers["gold"]
    gold.discount_percent = Decimal("10")
    gold.save()
    offer = TierOffer.objects.get(tier=gold, kind=TierOffer.Kind.DISCOUNT).offer
    assert (offer.name, offer.benefit.value) == ("Gold member −10%", Decimal("10"))

    gold.discount_percent = Decimal("0")
    gold.save()
    offer.refresh_from_db()
    assert offer.status == ConditionalOffer.SUSPENDED

    gold.discount_percent = Decimal("7.5")
    gold.save()
    offer.refresh_from_db()
    assert offer.status == ConditionalOffer.OPEN
    assert offer.name == "Gold member −7.5%"
    assert TierOffer.objects.filter(tier=gold).count() == 2  # no second offer


def test_a_gold_member_sees_gold_member_minus_8_percent_and_only_that(
    client, tiers, product
):
    client.force_login(shopper_in(tiers["gold"]))
    add_to_basket(client, product)

    response, discounts = basket_discounts(client)

    assert discounts == {"Gold member −8%": Decimal("8.00")}
    assert "Gold member −8%" in response.content.decode()


@pytest.mark.parametrize(
    "tier, expected",
    [
        ("silver", {"Silver member −5%": Decimal("5.00")}),
        ("regular", {}),
        (None, {}),
    ],
)
def test_lower_tiers_and_members_without_a_tier_get_their_own_or_nothing(
    client, tiers, product, tier, expected
):
    client.force_login(shopper_in(tiers[tier] if tier else None))
    add_to_basket(client, product)

    assert basket_discounts(client)[1] == expected


def test_guests_get_no_tier_discount(client, tiers, product):
    add_to_basket(client, product)

    assert basket_discounts(client)[1] == {}


def test_the_order_records_the_tier_discount(client, tiers, product):
    client.force_login(shopper_in(tiers["gold"]))

    order = place_order(client, product)

    discount = order.discounts.get()
    assert discount.offer_name == "Gold member −8%"
    assert discount.amount == Decimal("8.00")
    assert order.total_excl_tax == Decimal("92.00")


def test_an_exclusive_offer_of_higher_priority_wins_over_the_tier_discount(
    client, tiers, product
):
    """Oscar's own rules decide: the owner's exclusive offer goes first, alone."""
    gold_offer = TierOffer.objects.get(
        tier=tiers["gold"], kind=TierOffer.Kind.DISCOUNT
    ).offer
    Benefit = get_model("offer", "Benefit")
    Condition = get_model("offer", "Condition")
    everything = gold_offer.benefit.range
    ConditionalOffer.objects.create(
        name="Winter sale −20%",
        offer_type=ConditionalOffer.SITE,
        exclusive=True,
        priority=1000,
        condition=Condition.objects.create(
            type=Condition.COUNT, value=1, range=everything
        ),
        benefit=Benefit.objects.create(
            type=Benefit.PERCENTAGE, value=20, range=everything
        ),
    )
    client.force_login(shopper_in(tiers["gold"]))
    add_to_basket(client, product)

    assert basket_discounts(client)[1] == {"Winter sale −20%": Decimal("20.00")}


def test_a_gold_member_ships_free_on_a_charged_method(client, tiers, product):
    user = shopper_in(tiers["gold"])
    client.force_login(user)
    add_to_basket(client, product)
    basket = Basket.objects.get(owner=user, status=Basket.OPEN)
    basket.strategy = client.get(reverse("basket:summary")).context["basket"].strategy
    Applicator().apply(basket, user)

    (method,) = Repository().apply_shipping_offers(
        basket, [FixedPrice(Decimal("10.00"), Decimal("10.00"))]
    )

    assert method.calculate(basket).excl_tax == Decimal("0.00")
    assert basket.shipping_discounts[0]["name"] == "Gold member free shipping"


def test_silver_members_pay_for_shipping(client, tiers, product):
    user = shopper_in(tiers["silver"])
    client.force_login(user)
    add_to_basket(client, product)
    basket = Basket.objects.get(owner=user, status=Basket.OPEN)
    basket.strategy = client.get(reverse("basket:summary")).context["basket"].strategy
    Applicator().apply(basket, user)

    assert basket.shipping_discounts == []


def test_the_basket_page_costs_the_same_queries_with_one_or_three_tier_offers(
    client, tiers, product, django_assert_num_queries
):
    client.force_login(shopper_in(tiers["gold"]))
    add_to_basket(client, product)
    client.get(reverse("basket:summary"))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(reverse("basket:summary"))
    for rank, code in ((3, "diamond"), (4, "black")):
        Tier.objects.create(
            code=code, name=code.title(), rank=rank, threshold=rank * 10000,
            discount_percent=rank * 3, free_shipping=True,
        )  # fmt: skip
    with django_assert_num_queries(len(few.captured_queries)):
        client.get(reverse("basket:summary"))


def test_the_basket_page_reads_the_plugin_offers_range_once(client, tiers, product):
    """Oscar makes a new proxy of a condition or benefit for every question, which
    forgot its range: the plugin keeps one of each per offer, and the range they
    share is read once a request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from oscar_loyalty.models import Campaign

    now = timezone.now()
    Campaign.objects.create(
        name="Member day", kind=Campaign.Kind.DISCOUNT, discount_percent=5,
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1),
    )  # fmt: skip
    client.force_login(shopper_in(tiers["gold"]))
    add_to_basket(client, product)
    with CaptureQueriesContext(connection) as captured:
        response, discounts = basket_discounts(client)
    assert discounts == {
        "Gold member −8%": Decimal("8.00"),
        "Member day": Decimal("5.00"),  # of the price before the tier discount
    }
    reads = [q for q in captured if 'FROM "offer_range"' in q["sql"]]
    assert len(reads) == 1


def test_points_can_pay_for_half_of_what_is_left_after_the_tier_discount(
    client, tiers, product
):
    """The points panel works out its limit with another offer's discount present."""
    from oscar_loyalty.services import ledger

    user = shopper_in(tiers["gold"])
    ledger.adjust(
        member=Member.objects.get(user=user),
        points=8000,
        reason="Welcome gift",
        actor=ledger.Actor(id=None, name="test"),
    )
    client.force_login(user)
    add_to_basket(client, product)

    response = client.get(reverse("basket:summary"))

    assert response.status_code == 200
    panel = response.content.decode()
    assert 'max="4600"' in panel  # 50 % of 92.00 at 0.01 a point


def test_the_tier_description_reaches_oscars_offer_pages_escaped(client, tiers):
    gold = tiers["gold"]
    gold.description = '<img src=x onerror="alert(1)"> & more'
    gold.save()

    response = client.get(reverse("offer:list"))

    html = response.content.decode()
    assert '<img src=x onerror="alert(1)">' not in html
    assert "&lt;img src=x" in html


def test_an_offer_the_owner_suspended_stays_suspended_when_the_tier_is_saved(tiers):
    gold = tiers["gold"]
    offer = TierOffer.objects.get(tier=gold, kind=TierOffer.Kind.DISCOUNT).offer
    offer.suspend()

    gold.description = "Now with tea tastings."
    gold.save()

    offer.refresh_from_db()
    assert offer.status == ConditionalOffer.SUSPENDED


def test_a_gold_member_gets_silvers_discount_while_golds_offer_is_out_of_date(
    client, tiers, product
):
    from datetime import timedelta

    from django.utils import timezone

    offer = TierOffer.objects.get(
        tier=tiers["gold"], kind=TierOffer.Kind.DISCOUNT
    ).offer
    offer.end_datetime = timezone.now() - timedelta(days=1)
    offer.save()
    client.force_login(shopper_in(tiers["gold"]))
    add_to_basket(client, product)

    assert basket_discounts(client)[1] == {"Silver member −5%": Decimal("5.00")}


def test_offer_names_are_written_in_the_shops_language(db, settings):
    settings.LANGUAGE_CODE = "zh-hans"

    gold = Tier.objects.create(
        code="gold", name="黄金", rank=2, threshold=5000, discount_percent=8
    )

    offer = TierOffer.objects.get(tier=gold).offer
    assert offer.name == "黄金会员 −8%"
