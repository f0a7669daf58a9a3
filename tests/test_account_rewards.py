"""The shopper's rewards catalogue: what points buy, whether this member can redeem
each reward now, and redeeming through the confirmation page, the real views and
the ledger."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import (
    CouponDesign,
    Member,
    MemberCoupon,
    Posting,
    Reward,
    RewardRedemption,
    Tier,
)
from oscar_loyalty.services import ledger, rewards
from oscar_loyalty.services.holds import hold_points
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import add_to_basket
from tests.factories import ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

REWARDS = "loyalty:rewards"
REDEEM = "loyalty:reward-redeem"
COUPONS = "loyalty:coupons"
TOKEN = re.compile(r'name="token" value="([A-Za-z0-9_-]+)"')


@pytest.fixture
def voucher_design():
    """¥20 off, bought with points."""
    return CouponDesign.objects.create(
        name="¥20 off",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        valid_days=30,
    )


@pytest.fixture
def voucher(voucher_design):
    return Reward.objects.create(
        name="¥20 voucher",
        description="Money off your next tea.",
        design=voucher_design,
        points_price=2000,
        stock=5,
    )


@pytest.fixture
def gold():
    return Tier.objects.create(code="gold", name="Gold", rank=2, threshold=5000)


@pytest.fixture
def silver():
    return Tier.objects.create(code="silver", name="Silver", rank=1, threshold=1000)


def new_reward(design, name, points_price=100, **fields):
    return Reward.objects.create(
        name=name, design=design, points_price=points_price, **fields
    )


def member_with(points, **fields):
    member = get_or_create_member(UserFactory())
    if fields:
        Member.objects.filter(pk=member.pk).update(**fields)
    if points:
        ledger.adjust(
            member=member,
            points=points,
            reason="opening balance",
            actor=ledger.Actor.from_user(StaffFactory()),
        )
    member.refresh_from_db()
    return member


def signed_in(client, member):
    client.force_login(member.user)
    return client


def said(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def offers_by_name(response):
    return {offer.reward.name: offer for offer in response.context["offers"]}


def card(page, reward):
    """The catalogue's card of ``reward`` (its HTML)."""
    marker = f'id="loyalty-reward-{reward.pk}"'
    assert marker in page, f"{reward.name} is not in the catalogue"
    return page.split(marker)[1].split('class="card h-100')[0]


def token_from(client, reward):
    response = client.get(reverse(REDEEM, kwargs={"pk": reward.pk}))
    assert response.status_code == 200
    return TOKEN.search(response.content.decode()).group(1)


def redeem(client, reward, token=None):
    """Confirm ``reward`` as the page's form does (a fresh token unless given)."""
    token = token or token_from(client, reward)
    return client.post(
        reverse(REDEEM, kwargs={"pk": reward.pk}),
        {"reward": reward.pk, "token": token},
    )


class Snapshot:
    """What a redemption would write, to show a refusal wrote none of it."""

    def __init__(self, member):
        self.member = member
        self.taken = self.now()

    def now(self):
        member = Member.objects.get(pk=self.member.pk)
        return {
            "available": member.available,
            "redemptions": RewardRedemption.objects.count(),
            "coupons": MemberCoupon.objects.count(),
            "redeem postings": Posting.objects.filter(kind=Posting.Kind.REDEEM).count(),
            "stock": dict(Reward.objects.values_list("pk", "stock")),
        }

    def unchanged(self):
        return self.now() == self.taken


# The catalogue ----------------------------------------------------------------------


def test_the_catalogue_lists_the_rewards_available_now_and_what_each_gives(
    client, voucher, voucher_design
):
    now = timezone.now()
    shipping = CouponDesign.objects.create(
        name="Parcel on us",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )
    unlimited = new_reward(shipping, "Free delivery", 500, position=1)
    last_ones = new_reward(voucher_design, "Last vouchers", 1500, stock=2)
    gone = new_reward(voucher_design, "Sold out", 300, stock=0)
    hidden = [
        new_reward(voucher_design, "Switched off", is_active=False),
        new_reward(voucher_design, "Not yet", starts_at=now + timedelta(days=1)),
        new_reward(voucher_design, "Over", ends_at=now - timedelta(minutes=1)),
        new_reward(
            CouponDesign.objects.create(
                name="Old design",
                purpose=CouponDesign.Purpose.REWARD,
                benefit_type=CouponDesign.BenefitType.FIXED,
                value=Decimal("5"),
                is_active=False,
            ),
            "Design no longer issued",
        ),
    ]
    current = new_reward(
        voucher_design,
        "In its dates",
        200,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
    )
    member = member_with(3000)

    response = signed_in(client, member).get(reverse(REWARDS))

    assert response.status_code == 200
    assert response.context["active_tab"] == "rewards"
    assert [offer.reward.pk for offer in response.context["offers"]] == [
        current.pk,
        gone.pk,
        last_ones.pk,
        voucher.pk,
        unlimited.pk,
    ]
    page = response.content.decode()
    assert 'id="loyalty-rewards-tab"' in page
    assert "You have 3,000 points to spend." in page
    shown = card(page, voucher)
    assert "¥20 voucher" in shown
    assert "Money off your next tea." in shown
    assert "CN¥20.00 off" in shown
    assert "2,000 points" in shown
    assert "5 left" in shown
    assert f'href="{reverse(REDEEM, kwargs={"pk": voucher.pk})}"' in shown
    assert "Free shipping" in card(page, unlimited)
    assert "Stock: unlimited" in card(page, unlimited)
    assert "2 left" in card(page, last_ones)
    sold_out = card(page, gone)
    assert "Out of stock" in sold_out
    assert "disabled" in sold_out
    assert reverse(REDEEM, kwargs={"pk": gone.pk}) not in sold_out
    for reward in hidden:
        assert f'id="loyalty-reward-{reward.pk}"' not in page
        assert reward.name not in page


def test_the_catalogue_says_what_this_member_can_redeem_and_why_not(
    client, voucher, voucher_design, gold, silver
):
    member = member_with(2600, tier=silver)
    once = new_reward(voucher_design, "Once each", 100, per_member_limit=1)
    rewards.redeem_reward(member=member, reward=once)  # 2,500 points left
    twice = new_reward(voucher_design, "Twice each", 100, per_member_limit=2)
    rewards.redeem_reward(member=member, reward=twice)  # 2,400 points left
    dear = new_reward(voucher_design, "Tea set", 3000)
    golden = new_reward(voucher_design, "Gold tea", 100)
    golden.tiers.add(gold)
    for_silver = new_reward(voucher_design, "Silver tea", 100)
    for_silver.tiers.add(silver, gold)
    sold_out = new_reward(voucher_design, "Sold out", 100, stock=0)

    response = signed_in(client, member).get(reverse(REWARDS))

    offers = offers_by_name(response)
    why_not = {name: offer.refusal for name, offer in offers.items()}
    assert why_not == {
        "¥20 voucher": "",
        "Twice each": "",
        "Silver tea": "",
        "Once each": ("You have reached the limit for this reward (1 per member)."),
        "Tea set": "You need 600 more points.",
        "Gold tea": "This reward is for members of these tiers: Gold.",
        "Sold out": "Sorry, this reward is out of stock.",
    }
    page = response.content.decode()
    for reward in (voucher, twice, for_silver):
        assert offers[reward.name].can_redeem
        assert reverse(REDEEM, kwargs={"pk": reward.pk}) in card(page, reward)
    for reward in (once, dear, golden, sold_out):
        shown = card(page, reward)
        assert not offers[reward.name].can_redeem
        assert reverse(REDEEM, kwargs={"pk": reward.pk}) not in shown
        assert "disabled" in shown
    assert "You need 600 more points." in card(page, dear)
    assert "members of these tiers: Gold" in card(page, golden)


def test_points_held_by_a_basket_cannot_buy_a_reward(client, voucher):
    member = member_with(2500)
    hold_points(member=member, basket_id=7, points=1000)  # spendable: 1,500

    response = signed_in(client, member).get(reverse(REWARDS))

    assert offers_by_name(response)["¥20 voucher"].refusal == (
        "You need 500 more points."
    )


def test_the_catalogue_runs_as_many_queries_for_ten_rewards_as_for_two(
    client, voucher, voucher_design, gold, silver, django_assert_max_num_queries
):
    member = member_with(50000, tier=silver)
    limited = new_reward(voucher_design, "Limited", 100, per_member_limit=3)
    limited.tiers.add(silver)
    rewards.redeem_reward(member=member, reward=limited)
    signed_in(client, member)
    url = reverse(REWARDS)
    client.get(url)  # the session settles on the first request
    with CaptureQueriesContext(connection) as two:
        assert len(client.get(url).context["offers"]) == 2
    baseline = len(two)

    for number in range(8):
        reward = new_reward(
            voucher_design, f"Reward {number}", 100 + number, per_member_limit=2
        )
        reward.tiers.add(silver if number % 2 else gold)
        if number % 2:
            rewards.redeem_reward(member=member, reward=reward)

    with django_assert_max_num_queries(baseline):
        response = client.get(url)
    offers = response.context["offers"]
    assert len(offers) == 10
    assert sum(not offer.can_redeem for offer in offers) == 4  # the Gold ones


def test_a_shopper_without_a_member_account_sees_the_catalogue_and_gets_none(
    client, voucher
):
    shopper = UserFactory()
    client.force_login(shopper)

    response = client.get(reverse(REWARDS))

    assert response.status_code == 200
    assert offers_by_name(response)["¥20 voucher"].refusal == (
        "You need 2,000 more points."
    )
    assert client.get(reverse(REDEEM, kwargs={"pk": voucher.pk})).status_code == 200
    assert not Member.objects.filter(user=shopper).exists()


def test_the_pages_are_only_for_signed_in_shoppers(client, voucher):
    for url in (reverse(REWARDS), reverse(REDEEM, kwargs={"pk": voucher.pk})):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("customer:login") in response.url

    response = client.post(
        reverse(REDEEM, kwargs={"pk": voucher.pk}),
        {"reward": voucher.pk, "token": "a" * 32},
    )

    assert reverse("customer:login") in response.url
    assert not RewardRedemption.objects.exists()


# The confirmation page --------------------------------------------------------------


def test_the_confirmation_page_says_what_the_member_spends_and_keeps(client, voucher):
    member = member_with(3000)
    snapshot = Snapshot(member)
    signed_in(client, member)
    url = reverse(REDEEM, kwargs={"pk": voucher.pk})

    response = client.get(url)

    assert response.status_code == 200
    assert response.context["active_tab"] == "rewards"
    page = response.content.decode()
    assert (
        "Spend 2,000 points for ¥20 voucher? You will have 1,000 points left." in page
    )
    form = page.split('id="loyalty-redeem-form"')[1].split("</form>")[0]
    assert 'method="post"' in page.split('id="loyalty-redeem-form"')[0][-200:]
    assert "csrfmiddlewaretoken" in form
    assert f'name="reward" value="{voucher.pk}"' in form
    token = TOKEN.search(form).group(1)
    assert len(token) >= 32
    assert token_from(client, voucher) != token  # a new one every time
    assert snapshot.unchanged()  # showing the page changes nothing


def test_the_confirmation_page_of_a_reward_the_member_cannot_afford_has_no_form(
    client, voucher
):
    response = signed_in(client, member_with(1500)).get(
        reverse(REDEEM, kwargs={"pk": voucher.pk})
    )

    page = response.content.decode()
    assert "You need 500 more points." in page
    assert 'id="loyalty-redeem-form"' not in page


@pytest.mark.parametrize(
    "change",
    [
        {"is_active": False},
        {"starts_at": timezone.now() + timedelta(days=1)},
        {"ends_at": timezone.now() - timedelta(seconds=1)},
    ],
)
def test_a_reward_not_available_gets_a_message_not_an_error(client, voucher, change):
    Reward.objects.filter(pk=voucher.pk).update(**change)
    signed_in(client, member_with(3000))

    response = client.get(reverse(REDEEM, kwargs={"pk": voucher.pk}))

    assert response.status_code == 302
    assert response.url == reverse(REWARDS)
    assert said(response) == ["This reward is not available just now."]


def test_a_reward_that_does_not_exist_gets_a_message_not_an_error(client, voucher):
    member = member_with(3000)
    snapshot = Snapshot(member)
    signed_in(client, member)
    missing = voucher.pk + 1000
    url = reverse(REDEEM, kwargs={"pk": missing})

    for send in (
        lambda: client.get(url),
        lambda: client.post(url, {"reward": missing, "token": "b" * 32}),
    ):
        response = send()
        assert response.status_code == 302
        assert response.url == reverse(REWARDS)
        assert said(response) == ["This reward is not available just now."]
        client.get(response.url)  # shows (and so clears) the message
    huge = f"{reverse(REWARDS)}{10**30}/redeem/"
    assert client.get(huge).url == reverse(REWARDS)
    assert client.post(huge, {"reward": 10**30, "token": "b" * 32}).url == (
        reverse(REWARDS)
    )
    assert client.get(f"{reverse(REWARDS)}-1/redeem/").status_code == 404
    assert snapshot.unchanged()


# Redeeming --------------------------------------------------------------------------


def test_a_member_redeems_a_reward_and_finds_the_coupon_in_my_coupons(client, voucher):
    member = member_with(3000)
    signed_in(client, member)

    response = redeem(client, voucher)

    assert response.status_code == 302
    assert response.url == reverse(COUPONS)
    redemption = RewardRedemption.objects.get()
    coupon = redemption.coupon
    assert (redemption.member, redemption.reward, redemption.points) == (
        member,
        voucher,
        2000,
    )
    assert (coupon.member, coupon.design, coupon.points_cost) == (
        member,
        voucher.design,
        2000,
    )
    code = coupon.voucher.code
    assert said(response) == [
        f"You spent 2,000 points on ¥20 voucher. Your coupon code is {code}."
    ]
    member.refresh_from_db()
    voucher.refresh_from_db()
    assert member.available == 1000
    assert voucher.stock == 4
    posting = Posting.objects.get(kind=Posting.Kind.REDEEM)
    assert (posting.member, posting.key) == (member, redemption.key)
    assert find_drift() == []

    usable = client.get(reverse(COUPONS)).content.decode()
    assert f">{code}</code>" in usable.split('id="loyalty-coupons-usable"')[1]
    assert "CN¥20.00 off" in usable
    catalogue = client.get(reverse(REWARDS))
    assert "You have 1,000 points to spend." in catalogue.content.decode()
    assert offers_by_name(catalogue)["¥20 voucher"].refusal == (
        "You need 1,000 more points."
    )


def test_posting_the_same_form_twice_redeems_once(client, voucher):
    member = member_with(5000)
    signed_in(client, member)
    token = token_from(client, voucher)

    messages = []
    for _ in range(2):
        response = redeem(client, voucher, token)
        assert response.url == reverse(COUPONS)
        messages.append(said(response))
        client.get(response.url)  # shows (and so clears) the message

    assert RewardRedemption.objects.count() == 1
    code = MemberCoupon.objects.get().voucher.code
    message = f"You spent 2,000 points on ¥20 voucher. Your coupon code is {code}."
    assert messages == [[message], [message]]
    member.refresh_from_db()
    voucher.refresh_from_db()
    assert (member.available, voucher.stock) == (3000, 4)
    assert find_drift() == []

    redeem(client, voucher)  # a new confirmation page: a second redemption
    assert RewardRedemption.objects.count() == 2
    member.refresh_from_db()
    assert member.available == 1000


REFUSALS = {
    "too few points": (
        lambda reward, member: hold_points(member=member, basket_id=7, points=3001),
        "You have 1999 points to spend, fewer than the 2000 asked for.",
    ),
    "out of stock": (
        lambda reward, member: Reward.objects.filter(pk=reward.pk).update(stock=0),
        "Sorry, this reward is out of stock.",
    ),
    "not for the tier": (
        lambda reward, member: reward.tiers.add(
            Tier.objects.create(code="gold", name="Gold", rank=2, threshold=5000)
        ),
        "This reward is for members of these tiers: Gold.",
    ),
    "limit reached": (
        lambda reward, member: (
            Reward.objects.filter(pk=reward.pk).update(per_member_limit=1),
            rewards.redeem_reward(member=member, reward=reward),
        ),
        "You have reached the limit for this reward (1 per member).",
    ),
    "switched off": (
        lambda reward, member: Reward.objects.filter(pk=reward.pk).update(
            is_active=False
        ),
        "This reward is not available just now.",
    ),
    "ended": (
        lambda reward, member: Reward.objects.filter(pk=reward.pk).update(
            ends_at=timezone.now() - timedelta(seconds=1)
        ),
        "This reward is not available just now.",
    ),
    "design no longer issued": (
        lambda reward, member: CouponDesign.objects.filter(pk=reward.design_id).update(
            is_active=False
        ),
        "This reward is not available just now.",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_every_refusal_says_why_and_writes_nothing(client, voucher, case):
    member = member_with(5000)
    signed_in(client, member)
    token = token_from(client, voucher)  # the page was open before the change
    change, message = REFUSALS[case]
    change(voucher, member)
    snapshot = Snapshot(member)

    response = redeem(client, voucher, token)

    assert response.status_code == 302
    assert response.url == reverse(REWARDS)
    assert said(response) == [message]
    assert snapshot.unchanged()
    assert find_drift() == []


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"reward": "{pk}"},
        {"reward": "{pk}", "token": "short"},
        {"reward": "{pk}", "token": "<script>alert(1)</script>" * 2},
        {"reward": "{pk}", "token": "c" * 65},
        {"reward": "nope", "token": "c" * 32},
        {"reward": "{other}", "token": "c" * 32},
    ],
)
def test_a_tampered_form_is_refused_and_writes_nothing(
    client, voucher, voucher_design, data
):
    other = new_reward(voucher_design, "Other", 100)
    member = member_with(5000)
    snapshot = Snapshot(member)
    signed_in(client, member)
    data = {
        name: value.format(pk=voucher.pk, other=other.pk)
        for name, value in data.items()
    }

    response = client.post(reverse(REDEEM, kwargs={"pk": voucher.pk}), data)

    assert response.status_code == 302
    assert response.url == reverse(REWARDS)
    assert said(response) == ["This form has expired. Please choose the reward again."]
    assert snapshot.unchanged()


def test_redeeming_needs_the_csrf_token(voucher):
    member = member_with(3000)
    snapshot = Snapshot(member)
    client = Client(enforce_csrf_checks=True)
    client.force_login(member.user)

    response = client.post(
        reverse(REDEEM, kwargs={"pk": voucher.pk}),
        {"reward": voucher.pk, "token": "d" * 32},
    )

    assert response.status_code == 403
    assert snapshot.unchanged()


def test_getting_the_pages_never_redeems(client, voucher):
    member = member_with(3000)
    snapshot = Snapshot(member)
    signed_in(client, member)
    url = reverse(REDEEM, kwargs={"pk": voucher.pk})

    client.get(reverse(REWARDS), {"reward": voucher.pk, "token": "e" * 32})
    client.get(url)
    client.get(url, {"reward": voucher.pk, "token": "e" * 32})
    client.head(url)

    assert snapshot.unchanged()


# Only the member's own data ---------------------------------------------------------


def test_another_members_redemptions_and_points_are_never_used_or_shown(
    client, voucher, voucher_design
):
    once = new_reward(voucher_design, "Once each", 100, per_member_limit=1)
    theirs = member_with(9000)
    rewards.redeem_reward(member=theirs, reward=once)
    mine = member_with(2500)
    signed_in(client, mine)

    response = client.get(reverse(REWARDS), {"member": theirs.pk})

    assert offers_by_name(response)["Once each"].can_redeem  # their limit, not mine
    page = response.content.decode()
    assert "You have 2,500 points to spend." in page
    assert "8,900" not in page
    confirm = client.get(
        reverse(REDEEM, kwargs={"pk": voucher.pk}), {"member": theirs.pk}
    )
    assert "You will have 500 points left." in confirm.content.decode()


def test_another_members_token_redeems_only_for_the_signed_in_member(client, voucher):
    theirs = member_with(3000)
    other_client = signed_in(Client(), theirs)
    token = token_from(other_client, voucher)
    redeem(other_client, voucher, token)
    their_code = MemberCoupon.objects.get(member=theirs).voucher.code
    mine = member_with(3000)
    signed_in(client, mine)

    response = redeem(client, voucher, token)  # the same token, by someone else

    my_coupon = MemberCoupon.objects.get(member=mine)
    assert said(response) == [
        "You spent 2,000 points on ¥20 voucher. Your coupon code is "
        f"{my_coupon.voucher.code}."
    ]
    assert their_code not in str(said(response))
    assert RewardRedemption.objects.filter(member=mine).count() == 1
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert (theirs.available, mine.available) == (1000, 1000)
    coupons_page = client.get(reverse(COUPONS)).content.decode()
    assert their_code not in coupons_page
    assert find_drift() == []


# A free product ---------------------------------------------------------------------


def test_a_product_reward_is_redeemed_and_makes_one_item_free_in_the_basket(client):
    cup = ProductFactory(title="Tea cup", stockrecord__price=Decimal("35.00"))
    design = CouponDesign.objects.create(
        name="Free tea cup",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.PRODUCT,
        product=cup,
    )
    reward = new_reward(design, "A tea cup", 3500)
    member = member_with(4000)
    signed_in(client, member)

    catalogue = client.get(reverse(REWARDS)).content.decode()
    assert "One Tea cup free" in card(catalogue, reward)
    confirm = client.get(reverse(REDEEM, kwargs={"pk": reward.pk})).content.decode()
    assert "One Tea cup free" in confirm
    assert "Spend 3,500 points for A tea cup? You will have 500 points left." in (
        confirm
    )

    response = redeem(client, reward)

    coupon = MemberCoupon.objects.get(member=member)
    assert said(response) == [
        "You spent 3,500 points on A tea cup. Your coupon code is "
        f"{coupon.voucher.code}."
    ]
    mine = client.get(reverse(COUPONS)).content.decode()
    assert coupon.voucher.code in mine
    assert "One Tea cup free" in mine
    add_to_basket(client, cup, quantity=2)
    client.post(reverse("basket:vouchers-add"), {"code": coupon.voucher.code})
    basket = client.get(reverse("basket:summary")).context["basket"]
    assert [d["discount"] for d in basket.voucher_discounts] == [Decimal("35.00")]
    assert basket.total_incl_tax == Decimal("35.00")
    member.refresh_from_db()
    assert member.available == 500
    assert find_drift() == []
