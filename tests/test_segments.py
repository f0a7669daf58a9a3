"""Member segments as audiences: campaigns for a segment (bonus points, a
discount, a coupon) and Oscar offers with a "member in segment X" condition,
through Oscar's real basket and checkout."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_class, get_model

from oscar_loyalty import scoring, segment_offers, tasks
from oscar_loyalty.models import (
    SEGMENT_CHOICES,
    Campaign,
    ConditionSegment,
    CouponDesign,
    MemberCoupon,
    SegmentCondition,
)
from tests.checkout import add_to_basket
from tests.factories import CountryFactory, ProductFactory
from tests.test_campaigns import discounts, running
from tests.test_product_points import check_out, earned, page
from tests.test_scoring import history, member

pytestmark = pytest.mark.django_db

ConditionalOffer = get_model("offer", "ConditionalOffer")
Benefit = get_model("offer", "Benefit")
Range = get_model("offer", "Range")


@pytest.fixture
def tea(db):
    CountryFactory()
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


@pytest.fixture
def people(db):
    """A dormant member (last order 300 days ago) and an active one, scored
    before either signs in (signing in is an interaction of the next run)."""
    dormant = member(joined_days=400)
    history(dormant, every=30, last_days_ago=300, orders=3)
    active = member(joined_days=400)
    history(active, every=30, last_days_ago=5, orders=3)
    private = member(joined_days=400, profiling=False)
    history(private, every=30, last_days_ago=300, orders=3)
    scoring.run(timezone.now())
    return {"dormant": dormant, "active": active, "private": private}


def test_a_bonus_points_campaign_for_dormant_members_reaches_only_them(
    client, people, tea
):
    running(
        name="Come back: double points",
        kind=Campaign.Kind.POINTS,
        multiplier=2,
        segments=["activity:dormant"],
    )

    client.force_login(people["dormant"].user)
    assert "Earn 200 points" in page(client, tea)
    add_to_basket(client, tea)
    assert earned(check_out(client))[0][0] == 200

    for who in ("active", "private"):  # not dormant; not scored at all
        client.force_login(people[who].user)
        assert "Earn 100 points" in page(client, tea)
        add_to_basket(client, tea)
        assert earned(check_out(client))[0][0] == 100


def test_a_discount_campaign_for_a_segment_and_a_tier_needs_both(client, people, tea):
    from oscar_loyalty.models import Member, Tier

    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=100)
    campaign = running(
        name="Gold sleepers",
        kind=Campaign.Kind.DISCOUNT,
        discount_percent=Decimal("10"),
        segments=["activity:dormant", "activity:at_risk"],
    )
    campaign.tiers.add(gold)

    client.force_login(people["dormant"].user)
    add_to_basket(client, tea)
    assert discounts(client)[1] == {}  # dormant, but not Gold

    Member.objects.filter(pk=people["dormant"].pk).update(tier=gold)
    assert discounts(client)[1] == {"Gold sleepers": Decimal("10.00")}


def test_a_campaign_coupon_goes_to_its_segment_only(people):
    design = CouponDesign.objects.create(
        name="We miss you",
        purpose=CouponDesign.Purpose.WINBACK,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )
    running(
        kind=Campaign.Kind.DISCOUNT,
        discount_percent=5,
        coupon_design=design,
        segments=["activity:dormant"],
    )

    assert tasks.issue_campaign_coupons.delay().get() == 1
    assert list(MemberCoupon.objects.values_list("member", flat=True)) == [
        people["dormant"].pk
    ]


def test_every_segment_has_a_condition_in_oscars_offer_wizard(db):
    # The campaign's own condition is listed too: every proxy names itself in
    # text (Oscar calls str() on it).
    running(kind=Campaign.Kind.DISCOUNT, discount_percent=Decimal("5"))
    segment_offers.ensure_conditions()
    assert ConditionSegment.objects.count() == len(SEGMENT_CHOICES)
    assert segment_offers.ensure_conditions() == 0  # made once

    ConditionForm = get_class("dashboard.offers.forms", "ConditionForm")
    labels = {
        str(label) for _pk, label in ConditionForm().fields["custom_condition"].choices
    }
    assert "Member in segment: RFM: Champions" in labels
    assert "Member in segment: Activity: Dormant" in labels
    assert "A member of the campaign's audience" in labels


def segment_offer(code, percent="15"):
    segment_offers.ensure_conditions()
    condition = ConditionSegment.objects.get(segment=code).condition
    everything = Range.objects.create(name="Everything", includes_all_products=True)
    benefit = Benefit.objects.create(
        range=everything, type=Benefit.PERCENTAGE, value=Decimal(percent)
    )
    return ConditionalOffer.objects.create(
        name=f"{percent}% for {code}",
        offer_type=ConditionalOffer.SITE,
        condition=condition,
        benefit=benefit,
    )


def test_an_oscar_offer_with_a_segment_condition_applies_to_that_segment(
    client, people, tea
):
    segment_offer("activity:dormant")

    client.force_login(people["dormant"].user)
    add_to_basket(client, tea)
    assert discounts(client)[1] == {"15% for activity:dormant": Decimal("15.00")}

    for who in ("active", "private"):
        client.force_login(people[who].user)
        add_to_basket(client, tea)
        assert discounts(client)[1] == {}


def test_a_guest_basket_never_meets_a_segment_condition(client, people, tea):
    segment_offer("activity:dormant")
    add_to_basket(client, tea)
    assert discounts(client)[1] == {}


def test_the_segment_condition_names_its_segment(db):
    segment_offers.ensure_conditions()
    condition = ConditionSegment.objects.get(segment="rfm:cant_lose").condition
    proxy = condition.proxy()
    assert isinstance(proxy, SegmentCondition)
    assert str(proxy.name) == "Member in segment: RFM: Can't lose them"


def test_the_owner_picks_segments_for_a_campaign_on_record(db):
    from django.contrib.admin.models import LogEntry
    from django.test import Client

    from tests.factories import StaffFactory
    from tests.test_dashboard_members import grant

    client = Client()
    client.force_login(grant(StaffFactory(), "add_campaign", "view_campaign"))
    now = timezone.now()
    response = client.post(
        reverse("loyalty_dashboard:loyalty-campaign-create"),
        {
            "name": "Champions' day",
            "kind": "discount",
            "starts_at": (now + timedelta(days=1)).strftime("%Y-%m-%d %H:%M"),
            "ends_at": (now + timedelta(days=2)).strftime("%Y-%m-%d %H:%M"),
            "segments": ["rfm:champions", "rfm:loyal"],
            "discount_percent": "8",
            "multiplier": "2",
            "is_active": "on",
            "steps-TOTAL_FORMS": "0",
            "steps-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(name="Champions' day")
    assert campaign.segments == ["rfm:champions", "rfm:loyal"]
    assert (
        "rfm:champions"
        in LogEntry.objects.get(object_id=str(campaign.pk)).change_message
    )
    listing = client.get(reverse("loyalty_dashboard:loyalty-campaign-list"))
    assert "RFM: Champions, RFM: Loyal" in listing.content.decode()
