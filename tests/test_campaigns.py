"""Campaigns through Oscar's real basket and checkout: member-day discounts,
spend-X-save-Y steps, bonus points for an audience, coupons handed out, reports."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty import campaigns
from oscar_loyalty.models import (
    Campaign,
    CampaignOrder,
    CampaignStep,
    CouponDesign,
    Lot,
    Member,
    MemberCoupon,
    Tier,
)
from oscar_loyalty.services import orders as order_service
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import add_to_basket, place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

ConditionalOffer = get_model("offer", "ConditionalOffer")
Range = get_model("offer", "Range")


@pytest.fixture
def tiers(db):
    return {
        "silver": Tier.objects.create(code="silver", name="Silver", rank=1),
        "gold": Tier.objects.create(code="gold", name="Gold", rank=2, threshold=100),
    }


@pytest.fixture
def tea(db):
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


def shopper(tier=None):
    CountryFactory()
    member = get_or_create_member(UserFactory())
    if tier is not None:
        Member.objects.filter(pk=member.pk).update(tier=tier)
    return member


def running(**fields):
    now = timezone.now()
    fields.setdefault("starts_at", now - timedelta(hours=1))
    fields.setdefault("ends_at", now + timedelta(days=1))
    fields.setdefault("name", "Member day")
    return Campaign.objects.create(**fields)


def discounts(client):
    response = client.get(reverse("basket:summary"))
    basket = response.context["basket"]
    return response, {str(d["name"]): d["discount"] for d in basket.offer_discounts}


def test_a_campaign_is_an_oscar_site_offer_in_its_window(tiers):
    campaign = running(kind=Campaign.Kind.DISCOUNT, discount_percent=Decimal("10"))
    offer = campaign.offer
    assert offer.offer_type == ConditionalOffer.SITE
    assert (offer.start_datetime, offer.end_datetime) == (
        campaign.starts_at,
        campaign.ends_at,
    )
    assert offer in ConditionalOffer.active.all()
    campaign.is_active = False
    campaign.save()
    offer.refresh_from_db()
    assert offer.status == ConditionalOffer.SUSPENDED


def test_member_day_discount_for_the_audience_tier_only(client, tiers, tea):
    campaign = running(kind=Campaign.Kind.DISCOUNT, discount_percent=Decimal("10"))
    campaign.tiers.add(tiers["gold"])

    gold = shopper(tiers["gold"])
    client.force_login(gold.user)
    add_to_basket(client, tea)
    assert discounts(client)[1] == {"Member day": Decimal("10.00")}

    client.force_login(shopper(tiers["silver"]).user)
    add_to_basket(client, tea)
    assert discounts(client)[1] == {}


def test_a_guest_is_in_no_audience(client, tiers, tea):
    running(kind=Campaign.Kind.DISCOUNT, discount_percent=Decimal("10"))
    add_to_basket(client, tea)
    assert discounts(client)[1] == {}


def test_outside_its_window_nothing_applies(client, tiers, tea):
    now = timezone.now()
    running(
        kind=Campaign.Kind.DISCOUNT,
        discount_percent=Decimal("10"),
        starts_at=now + timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )
    client.force_login(shopper().user)
    add_to_basket(client, tea)
    assert discounts(client)[1] == {}


@pytest.mark.parametrize(
    "quantity, saved",
    [(1, None), (2, "50.00"), (4, "50.00"), (5, "150.00"), (7, "150.00")],
)
def test_spend_x_save_y_gives_the_highest_step_reached(
    client, tiers, tea, quantity, saved
):
    campaign = running(name="Spend more", kind=Campaign.Kind.SPEND_SAVE)
    CampaignStep.objects.create(campaign=campaign, threshold=200, amount=50)
    CampaignStep.objects.create(campaign=campaign, threshold=500, amount=150)
    client.force_login(shopper().user)
    add_to_basket(client, tea, quantity=quantity)

    response, found = discounts(client)

    assert found == ({"Spend more": Decimal(saved)} if saved else {})


def test_the_basket_says_double_points(client, tiers, tea):
    campaign = running(name="Double points", kind=Campaign.Kind.POINTS, multiplier=2)
    campaign.tiers.add(tiers["gold"])
    gold = shopper(tiers["gold"])
    client.force_login(gold.user)
    add_to_basket(client, tea)
    response = client.get(reverse("basket:summary"))
    assert "Double points: ×2 points" in response.content.decode()


def test_double_points_earns_twice_for_the_audience_only(client, tiers, tea):
    campaign = running(name="Double points", kind=Campaign.Kind.POINTS, multiplier=2)
    campaign.tiers.add(tiers["gold"])

    gold = shopper(tiers["gold"])
    client.force_login(gold.user)
    gold_order = place_order(client, tea)
    silver = shopper(tiers["silver"])
    client.force_login(silver.user)
    place_order(client, tea)

    gold.refresh_from_db()
    silver.refresh_from_db()
    assert (gold.pending, silver.pending) == (200, 100)
    assert Lot.objects.get(member=gold).rule == campaign.earn_rule.code
    recorded = CampaignOrder.objects.get()
    assert (recorded.campaign, recorded.order_number) == (campaign, gold_order.number)
    assert gold_order.discounts.get().message == "Double points: ×2 points"
    result = campaigns.report(campaign)
    assert (result.orders, result.revenue, result.points_cost) == (
        1,
        gold_order.total_incl_tax,
        100,
    )


def test_a_cancelled_order_leaves_the_report_and_its_bonus_is_reversed(
    client, tiers, tea
):
    campaign = running(name="Double points", kind=Campaign.Kind.POINTS, multiplier=2)
    member = shopper()
    client.force_login(member.user)
    order = place_order(client, tea)
    order_service.cancel_order(order_number=order.number)

    result = campaigns.report(campaign)

    assert (result.orders, result.points_cost) == (0, 0)
    member.refresh_from_db()
    assert member.pending == 0


def test_a_category_campaign_only_multiplies_its_products(client, tiers, tea):
    teas = Range.objects.create(name="Teas")
    teas.add_product(tea)
    cup = ProductFactory(title="Cup", stockrecord__price=Decimal("50.00"))
    running(name="Tea week", kind=Campaign.Kind.POINTS, multiplier=3, range=teas)
    member = shopper()
    client.force_login(member.user)
    add_to_basket(client, cup)
    place_order(client, tea)
    member.refresh_from_db()
    assert member.pending == 300 + 50


def test_spend_save_orders_record_their_discount(client, tiers, tea):
    campaign = running(name="Spend more", kind=Campaign.Kind.SPEND_SAVE)
    CampaignStep.objects.create(campaign=campaign, threshold=200, amount=50)
    client.force_login(shopper().user)
    add_to_basket(client, tea)
    order = place_order(client, tea)
    assert order.total_excl_tax == Decimal("150.00")
    recorded = CampaignOrder.objects.get()
    assert recorded.discount == Decimal("50.00")
    assert campaigns.report(campaign).discount == Decimal("50.00")


def test_a_campaign_hands_its_coupon_to_its_audience_once(tiers):
    design = CouponDesign.objects.create(
        name="Member day gift",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )
    campaign = running(
        kind=Campaign.Kind.DISCOUNT, discount_percent=5, coupon_design=design
    )
    campaign.tiers.add(tiers["gold"])
    gold, other_gold = shopper(tiers["gold"]), shopper(tiers["gold"])
    shopper(tiers["silver"])

    from oscar_loyalty import tasks

    assert tasks.issue_campaign_coupons.delay().get() == 2
    assert tasks.issue_campaign_coupons.delay().get() == 0
    assert set(MemberCoupon.objects.values_list("member", flat=True)) == {
        gold.pk,
        other_gold.pk,
    }
    assert campaigns.report(campaign).coupons_issued == 2


def test_deleting_a_campaign_withdraws_its_offer_and_rule(tiers):
    campaign = running(name="Double points", kind=Campaign.Kind.POINTS, multiplier=2)
    offer, rule = campaign.offer, campaign.earn_rule
    campaign.delete()
    offer.refresh_from_db()
    rule.refresh_from_db()
    assert offer.status == ConditionalOffer.SUSPENDED
    assert not rule.is_active
