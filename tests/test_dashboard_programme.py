"""The owner's programme screens in Oscar's dashboard: the rewards catalogue (with
each reward's redemptions), campaigns (with their spend-X-save-Y steps and report),
action rewards and referrals, the referrals box on a member's page and the one-time
key of the member page's coupon form.

Everything goes through Django's test client and Oscar's real URL permission
checks; points, coupons, redemptions and referrals are written with the services,
and orders are placed through Oscar's real basket and checkout, as in the shop.
"""

import uuid
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_model
from oscar.templatetags.currency_filters import currency

from oscar_loyalty.models import (
    ActionRule,
    Campaign,
    CampaignOrder,
    CampaignStep,
    CouponDesign,
    Member,
    MemberCoupon,
    Referral,
    Reward,
    Tier,
)
from oscar_loyalty.services import ledger, referrals, rewards
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

ConditionalOffer = get_model("offer", "ConditionalOffer")
Range = get_model("offer", "Range")
Voucher = get_model("voucher", "Voucher")

REWARDS = reverse("loyalty_dashboard:loyalty-reward-list")
NEW_REWARD = reverse("loyalty_dashboard:loyalty-reward-create")
CAMPAIGNS = reverse("loyalty_dashboard:loyalty-campaign-list")
NEW_CAMPAIGN = reverse("loyalty_dashboard:loyalty-campaign-create")
ACTIONS = reverse("loyalty_dashboard:loyalty-actionrule-list")
REFERRALS = reverse("loyalty_dashboard:loyalty-referral-list")
DASHBOARD = "/shop/dashboard/"


# Helpers -----------------------------------------------------------------------------


def grant(user, *codenames, app_label="oscar_loyalty"):
    """``user`` with the permissions ``codenames`` of ``app_label`` as well."""
    before = user.user_permissions.count()
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=codenames, content_type__app_label=app_label
        )
    )
    assert user.user_permissions.count() == before + len(codenames)
    return user


def html_of(response):
    return unescape(response.content.decode())


def part(html, element_id, end="</table>"):
    """The piece of ``html`` from the element with ``element_id`` to ``end``."""
    start = html.index(f'id="{element_id}"')
    return html[start : html.index(end, start)]


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def form_errors(response, form="form"):
    return {
        name: [str(error) for error in errors]
        for name, errors in response.context[form].errors.items()
    }


def local(moment):
    """A datetime as the dashboard's date-time fields take it."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def new_member(points=0, tier=None, **user_fields):
    member = get_or_create_member(UserFactory(**user_fields))
    if tier is not None:
        Member.objects.filter(pk=member.pk).update(tier=tier)
    if points:
        ledger.adjust(
            member=member, points=points, reason="Opening", actor=ledger.SYSTEM
        )
    return Member.objects.select_related("user", "tier").get(pk=member.pk)


def reward_url(reward):
    return reverse("loyalty_dashboard:loyalty-reward-update", kwargs={"pk": reward.pk})


def redemptions_url(reward):
    return reverse(
        "loyalty_dashboard:loyalty-reward-redemptions", kwargs={"pk": reward.pk}
    )


def campaign_url(campaign):
    return reverse(
        "loyalty_dashboard:loyalty-campaign-update", kwargs={"pk": campaign.pk}
    )


def report_url(campaign):
    return reverse(
        "loyalty_dashboard:loyalty-campaign-report", kwargs={"pk": campaign.pk}
    )


def new_action_url(action):
    return reverse(
        "loyalty_dashboard:loyalty-actionrule-create", kwargs={"action": action}
    )


def action_url(rule):
    return reverse(
        "loyalty_dashboard:loyalty-actionrule-update", kwargs={"pk": rule.pk}
    )


def detail_url(member):
    return reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": member.pk})


def issue_url(member):
    return reverse(
        "loyalty_dashboard:loyalty-member-issue-coupon", kwargs={"pk": member.pk}
    )


def rows():
    """Every programme row these screens write, to show a refused save wrote
    nothing."""
    return (
        list(Reward.objects.order_by("pk").values()),
        list(Campaign.objects.order_by("pk").values()),
        list(CampaignStep.objects.order_by("pk").values()),
        list(ActionRule.objects.order_by("pk").values()),
        LogEntry.objects.count(),
    )


# Fixtures ----------------------------------------------------------------------------


@pytest.fixture
def silver():
    return Tier.objects.create(code="silver", name="Silver", rank=1, threshold=0)


@pytest.fixture
def gold():
    return Tier.objects.create(code="gold", name="Gold", rank=2, threshold=1000)


@pytest.fixture
def voucher_design():
    return CouponDesign.objects.create(
        name="¥20 off",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        valid_days=30,
    )


@pytest.fixture
def staff_design():
    return CouponDesign.objects.create(
        name="Apology",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )


@pytest.fixture
def reward(voucher_design):
    return Reward.objects.create(
        name="¥20 voucher", design=voucher_design, points_price=2000, stock=5
    )


@pytest.fixture
def campaign():
    now = timezone.now().replace(microsecond=0)  # as the form posts it
    return Campaign.objects.create(
        name="Member day",
        kind=Campaign.Kind.DISCOUNT,
        discount_percent=Decimal("10"),
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )


@pytest.fixture
def checkin_rule():
    return ActionRule.objects.create(
        action=ActionRule.Action.CHECKIN, points=10, cap=1, cap_period="day"
    )


@pytest.fixture
def tea():
    CountryFactory()
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


EVERYTHING = {
    "view_reward",
    "add_reward",
    "change_reward",
    "view_campaign",
    "add_campaign",
    "change_campaign",
    "view_actionrule",
    "add_actionrule",
    "change_actionrule",
    "view_referral",
    "view_member",
}


@pytest.fixture
def owner(client):
    """Staff who may see, create and change everything on these screens."""
    user = grant(StaffFactory(first_name="Olive", last_name="Owner"), *EVERYTHING)
    client.force_login(user)
    return user


def screens(reward, campaign, rule):
    """(url, method, permissions any one of which opens it) for each screen."""
    return [
        (REWARDS, "get", {"view_reward", "change_reward"}),
        (NEW_REWARD, "get", {"add_reward"}),
        (reward_url(reward), "get", {"change_reward"}),
        (redemptions_url(reward), "get", {"view_reward", "change_reward"}),
        (CAMPAIGNS, "get", {"view_campaign", "change_campaign"}),
        (NEW_CAMPAIGN, "get", {"add_campaign"}),
        (campaign_url(campaign), "get", {"change_campaign"}),
        (report_url(campaign), "get", {"view_campaign", "change_campaign"}),
        (ACTIONS, "get", {"view_actionrule", "change_actionrule"}),
        (new_action_url("review"), "get", {"add_actionrule"}),
        (action_url(rule), "get", {"change_actionrule"}),
        (REFERRALS, "get", {"view_referral"}),
    ]


# Permissions -------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_dashboard_login(
    client, reward, campaign, checkin_rule
):
    for url, _method, _perms in screens(reward, campaign, checkin_rule):
        for method in ("get", "post"):
            response = getattr(client, method)(url)

            assert response.status_code == 302, url
            assert response.url.startswith("/shop/dashboard/login/?next="), url


def test_staff_without_the_permission_are_refused_and_nothing_changes(
    client, reward, campaign, checkin_rule, voucher_design
):
    before = rows()
    data = {
        "name": "Hacked",
        "design": voucher_design.pk,
        "points_price": "1",
        "kind": "discount",
        "discount_percent": "90",
        "starts_at": local(timezone.now()),
        "ends_at": local(timezone.now() + timedelta(days=1)),
        "points": "999",
        "cap_period": "day",
        "is_active": "on",
    }

    for url, _method, opening in screens(reward, campaign, checkin_rule):
        client.force_login(grant(StaffFactory(), *(EVERYTHING - opening)))
        assert client.get(url).status_code == 403, url
        assert client.post(url, data).status_code == 403, url

    assert rows() == before


def test_a_shopper_with_the_permissions_is_still_refused(client, reward):
    client.force_login(grant(UserFactory(), *EVERYTHING))

    for url in (REWARDS, CAMPAIGNS, ACTIONS, REFERRALS):
        assert client.get(url).status_code == 403, url


def test_staff_with_the_permission_are_let_in(client, reward, campaign, checkin_rule):
    for url, _method, opening in screens(reward, campaign, checkin_rule):
        for codename in sorted(opening):
            client.force_login(grant(StaffFactory(), codename))

            assert client.get(url).status_code == 200, (url, codename)


@pytest.mark.parametrize(
    ("codename", "shown"),
    [
        ("view_reward", REWARDS),
        ("change_campaign", CAMPAIGNS),
        ("view_actionrule", ACTIONS),
        ("view_referral", REFERRALS),
    ],
)
def test_the_menu_lists_only_the_screens_a_user_may_open(client, codename, shown):
    client.force_login(grant(StaffFactory(), codename))

    html = html_of(client.get(DASHBOARD))

    for url in (REWARDS, CAMPAIGNS, ACTIONS, REFERRALS):
        assert (f'href="{url}"' in html) == (url == shown), url


def test_those_who_may_only_view_get_no_create_or_edit_links(
    client, reward, campaign, checkin_rule
):
    client.force_login(
        grant(StaffFactory(), "view_reward", "view_campaign", "view_actionrule")
    )

    rewards_html = html_of(client.get(REWARDS))
    campaigns_html = html_of(client.get(CAMPAIGNS))
    actions_html = html_of(client.get(ACTIONS))

    assert (
        NEW_REWARD not in rewards_html
        and f'href="{reward_url(reward)}"' not in rewards_html
    )
    assert NEW_CAMPAIGN not in campaigns_html
    assert f'href="{campaign_url(campaign)}"' not in campaigns_html
    assert report_url(campaign) in campaigns_html
    assert f'href="{action_url(checkin_rule)}"' not in actions_html
    assert new_action_url("review") not in actions_html


# Rewards: the list -------------------------------------------------------------------


def redeem(reward, member):
    return rewards.redeem_reward(member=member, reward=reward)


def expire(coupon):
    Voucher.objects.filter(pk=coupon.voucher_id).update(
        end_datetime=timezone.now() - timedelta(minutes=1)
    )


def test_the_reward_list_shows_each_reward_with_its_counts(
    client, owner, reward, voucher_design, gold, silver
):
    Reward.objects.filter(pk=reward.pk).update(refund_unused=True)
    member = new_member(10_000)
    kept = redeem(reward, member)
    redeem(reward, member)
    expire(kept.coupon)
    assert rewards.refund_expired() == 1
    limited = Reward.objects.create(
        name="Gold tea set",
        design=voucher_design,
        points_price=500,
        per_member_limit=1,
        ends_at=timezone.now() - timedelta(days=1),
    )
    limited.tiers.set([gold, silver])

    html = html_of(client.get(REWARDS))

    row = part(html, f"loyalty-reward-{reward.pk}", "</tr>")
    assert "¥20 voucher" in row and "¥20 off" in row
    assert currency(Decimal("20")) + " off" in row
    assert "2000" in row and "All members" in row
    assert '<td class="text-right loyalty-stock">3</td>' in row
    assert f'{redemptions_url(reward)}">2</a>' in row
    assert '<td class="text-right loyalty-refunded-count">1</td>' in row
    assert "Available" in row
    row = part(html, f"loyalty-reward-{limited.pk}", "</tr>")
    assert "unlimited" in row
    assert "Silver, Gold" in row
    assert "Ended" in row
    assert '<td class="text-right loyalty-refunded-count">0</td>' in row


def test_an_unavailable_reward_says_why(client, owner, reward, voucher_design):
    CouponDesign.objects.filter(pk=voucher_design.pk).update(is_active=False)
    soon = Reward.objects.create(
        name="Later",
        design=CouponDesign.objects.create(
            name="Other",
            purpose=CouponDesign.Purpose.REWARD,
            benefit_type=CouponDesign.BenefitType.SHIPPING,
        ),
        points_price=10,
        stock=0,
        starts_at=timezone.now() + timedelta(days=1),
    )
    gone = Reward.objects.create(
        name="Gone", design=soon.design, points_price=10, stock=0
    )

    html = html_of(client.get(REWARDS))

    row = part(html, f"loyalty-reward-{reward.pk}", "</tr>")
    assert "Coupon design not issuing" in row
    assert "Scheduled" in part(html, f"loyalty-reward-{soon.pk}", "</tr>")
    assert "Out of stock" in part(html, f"loyalty-reward-{gone.pk}", "</tr>")


def test_the_reward_list_without_rewards_says_so(client, owner):
    assert "No rewards yet" in html_of(client.get(REWARDS))


def test_the_reward_list_counts_in_its_one_query(
    client, owner, reward, voucher_design, gold, django_assert_max_num_queries
):
    member = new_member(100_000)
    redeem(reward, member)
    client.get(REWARDS)  # the session and permissions are cached from here on
    with django_assert_max_num_queries(1000) as one_reward:
        client.get(REWARDS)

    for number in range(5):
        more = Reward.objects.create(
            name=f"Reward {number}", design=voucher_design, points_price=100
        )
        for _ in range(3):
            redeem(more, member)
        more.tiers.add(gold)
    with django_assert_max_num_queries(len(one_reward.captured_queries)):
        response = client.get(REWARDS)

    assert sorted(r.redeemed_count for r in response.context["rewards"]) == [
        1,
        3,
        3,
        3,
        3,
        3,
    ]


# Rewards: creating and editing -------------------------------------------------------


def reward_data(chosen, **fields):
    """The reward form as posted, for a reward of the design ``chosen``."""
    data = {
        "name": "Tea voucher",
        "description": "Twenty off your next tea.",
        "design": chosen.pk,
        "points_price": "2000",
        "stock": "",
        "tiers": [],
        "per_member_limit": "",
        "starts_at": "",
        "ends_at": "",
        "is_active": "on",
        "refund_unused": "",
        "position": "0",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value not in (None, "")}


def test_a_new_reward_is_saved_and_logged(client, owner, voucher_design, gold):
    starts = timezone.now() + timedelta(days=1)
    response = client.post(
        NEW_REWARD,
        reward_data(
            voucher_design,
            stock="50",
            per_member_limit="2",
            tiers=[gold.pk],
            starts_at=local(starts),
            ends_at=local(starts + timedelta(days=30)),
        ),
        follow=True,
    )

    assert response.redirect_chain == [(REWARDS, 302)]
    reward = Reward.objects.get()
    assert (reward.name, reward.design, reward.points_price) == (
        "Tea voucher",
        voucher_design,
        2000,
    )
    assert (reward.stock, reward.per_member_limit) == (50, 2)
    assert list(reward.tiers.all()) == [gold]
    assert "Reward “Tea voucher” created." in messages_of(response)
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, ADDITION)
    assert entry.content_type.model == "reward"
    assert entry.object_id == str(reward.pk)
    message = entry.change_message
    assert message.startswith("Created reward: name: Tea voucher;")
    assert "points_price: 2000" in message and "tiers: gold" in message
    assert f"design: ¥20 off (#{voucher_design.pk})" in message


def test_stock_and_limit_may_be_left_empty(client, owner, voucher_design):
    client.post(NEW_REWARD, reward_data(voucher_design))

    reward = Reward.objects.get()
    assert (reward.stock, reward.per_member_limit) == (None, None)
    assert list(reward.tiers.all()) == []


def test_only_designs_made_for_rewards_are_offered(
    client, owner, voucher_design, staff_design
):
    off = CouponDesign.objects.create(
        name="Old voucher",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
        is_active=False,
    )

    response = client.get(NEW_REWARD)

    choices = list(response.context["form"].fields["design"].queryset)
    assert choices == [voucher_design, off]
    field = part(html_of(response), "id_design", "</select>")
    assert "Old voucher (not issuing)" in field
    assert "Apology" not in field


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"points_price": "0"},
            "points_price",
            "The price must be at least one point.",
        ),
        ({"points_price": "-5"}, "points_price", "The price must be at least one"),
        ({"points_price": "1.5"}, "points_price", "Enter a whole number of points"),
        ({"points_price": ""}, "points_price", "Enter the price in points."),
        ({"design": "STAFF"}, "design", "Choose a coupon design made for rewards"),
        ({"design": ""}, "design", "Choose the coupon design the member receives."),
        ({"per_member_limit": "0"}, "per_member_limit", "The limit must be at least"),
        ({"stock": "-1"}, "stock", "The stock cannot be negative"),
        ({"stock": "many"}, "stock", "Enter a whole number, or leave it empty."),
        ({"ends_at": "BEFORE"}, "ends_at", "The end must be after the start."),
        ({"name": ""}, "name", "Give the reward a name"),
    ],
)
def test_a_bad_reward_is_shown_on_the_form_and_writes_nothing(
    client, owner, voucher_design, staff_design, fields, field, message
):
    starts = timezone.now() + timedelta(days=2)
    data = reward_data(voucher_design, starts_at=local(starts), **fields)
    if data.get("design") == "STAFF":
        data["design"] = staff_design.pk
    if data.get("ends_at") == "BEFORE":
        data["ends_at"] = local(starts - timedelta(days=1))
    before = rows()

    response = client.post(NEW_REWARD, data)

    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in error for error in errors[field]), errors
    assert rows() == before


def test_editing_a_reward_logs_each_change(client, owner, reward, gold):
    response = client.post(
        reward_url(reward),
        reward_data(
            reward.design,
            name=reward.name,
            points_price="1500",
            stock="5",
            stock_seen="5",
            tiers=[gold.pk],
        ),
        follow=True,
    )

    assert response.redirect_chain == [(REWARDS, 302)]
    reward.refresh_from_db()
    assert reward.points_price == 1500
    assert list(reward.tiers.all()) == [gold]
    assert "Reward “¥20 voucher” saved." in messages_of(response)
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id) == (CHANGE, str(reward.pk))
    assert entry.change_message == (
        "Changed description: — → Twenty off your next tea.; "
        "points_price: 2000 → 1500; tiers: — → gold"
    )


def test_saving_a_reward_unchanged_logs_nothing_changed(client, owner, reward):
    client.post(
        reward_url(reward),
        reward_data(
            reward.design, name=reward.name, description="", stock="5", stock_seen="5"
        ),
    )

    assert LogEntry.objects.get().change_message == "Changed nothing"


def test_a_bad_edit_changes_nothing(client, owner, reward):
    before = rows()

    response = client.post(
        reward_url(reward), reward_data(reward.design, points_price="0")
    )

    assert response.status_code == 200
    assert rows() == before


def test_an_unknown_reward_is_not_found(client, owner):
    assert (
        client.get(
            reverse("loyalty_dashboard:loyalty-reward-update", args=[999])
        ).status_code
        == 404
    )
    assert (
        client.get(
            reverse("loyalty_dashboard:loyalty-reward-redemptions", args=[999])
        ).status_code
        == 404
    )


# Rewards: redemptions ----------------------------------------------------------------


def test_a_rewards_redemptions_show_member_points_coupon_and_refund(
    client, owner, reward
):
    Reward.objects.filter(pk=reward.pk).update(refund_unused=True)
    mei = new_member(5000, email="mei@example.com")
    bo = new_member(5000, email="bo@example.com")
    refunded = redeem(reward, mei)
    expire(refunded.coupon)
    rewards.refund_expired()
    usable = redeem(reward, bo)
    other = Reward.objects.create(name="Other", design=reward.design, points_price=10)
    elsewhere = redeem(other, bo)
    refunded.refresh_from_db()

    response = client.get(redemptions_url(reward))

    html = html_of(response)
    assert elsewhere.coupon.voucher.code not in html
    row = part(html, f"loyalty-redemption-{refunded.pk}", "</tr>")
    assert mei.number in row and "mei@example.com" in row
    assert detail_url(mei) in row
    assert "2000" in row
    assert refunded.coupon.voucher.code in row and "Expired" in row
    assert refunded.refunded_at is not None
    row = part(html, f"loyalty-redemption-{usable.pk}", "</tr>")
    assert usable.coupon.voucher.code in row and "Usable" in row
    assert row.rstrip().endswith("<td>–</td>")
    # Newest first.
    assert [r.pk for r in response.context["redemptions"]] == [usable.pk, refunded.pk]


def test_redemptions_are_paginated_in_the_same_queries(
    client, owner, reward, django_assert_max_num_queries
):
    Reward.objects.filter(pk=reward.pk).update(stock=None)
    member = new_member(100_000)
    redeem(reward, member)
    client.get(redemptions_url(reward))
    with django_assert_max_num_queries(1000) as one:
        client.get(redemptions_url(reward))

    for _ in range(24):
        redeem(reward, member)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(redemptions_url(reward))

    assert len(response.context["redemptions"]) == 20
    assert response.context["paginator"].count == 25
    assert (
        len(client.get(redemptions_url(reward), {"page": 2}).context["redemptions"])
        == 5
    )


# Campaigns: creating and editing -----------------------------------------------------


def campaign_data(steps=(), existing=(), **fields):
    """The campaign form as posted: ``steps`` new (spend, save) rows after the
    ``existing`` ones, given as (step, spend, save, delete)."""
    now = timezone.now()
    data = {
        "name": "Member day",
        "description": "",
        "kind": "discount",
        "starts_at": local(now - timedelta(hours=1)),
        "ends_at": local(now + timedelta(days=1)),
        "range": "",
        "multiplier": "2",
        "discount_percent": "10",
        "coupon_design": "",
        "is_active": "on",
    }
    data.update(fields)
    data = {key: value for key, value in data.items() if value not in (None, "")}
    forms = [
        {"id": step.pk, "threshold": spend, "amount": save, "DELETE": delete}
        for step, spend, save, delete in existing
    ] + [{"threshold": spend, "amount": save} for spend, save in steps]
    forms += [{}] * 3
    data.update(
        {
            "steps-TOTAL_FORMS": str(len(forms)),
            "steps-INITIAL_FORMS": str(len(existing)),
            "steps-MIN_NUM_FORMS": "0",
            "steps-MAX_NUM_FORMS": "1000",
        }
    )
    for index, form in enumerate(forms):
        for name, value in form.items():
            if value not in (None, "", False):
                data[f"steps-{index}-{name}"] = "on" if value is True else value
    return data


def test_a_new_discount_campaign_is_saved_with_its_offer_and_logged(
    client, owner, gold
):
    response = client.post(
        NEW_CAMPAIGN, campaign_data(tiers=[gold.pk], discount_percent="15"), follow=True
    )

    assert response.redirect_chain == [(CAMPAIGNS, 302)]
    campaign = Campaign.objects.get()
    assert (campaign.kind, campaign.discount_percent) == ("discount", Decimal("15"))
    assert list(campaign.tiers.all()) == [gold]
    assert campaign.offer.status == ConditionalOffer.OPEN
    assert campaign.offer.benefit.value == Decimal("15")
    assert "Campaign “Member day” created." in messages_of(response)
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, ADDITION)
    assert entry.content_type.model == "campaign"
    assert "discount_percent: 15.00" in entry.change_message
    assert "tiers: gold" in entry.change_message


def test_a_spend_save_campaign_makes_an_offer_from_its_first_step(client, owner):
    response = client.post(
        NEW_CAMPAIGN,
        campaign_data(
            kind="spend_save", name="Spend more", steps=[("500", "150"), ("200", "50")]
        ),
    )

    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert list(campaign.steps.values_list("threshold", "amount")) == [
        (Decimal("200"), Decimal("50")),
        (Decimal("500"), Decimal("150")),
    ]
    campaign.offer.condition.refresh_from_db()
    assert campaign.offer.condition.value == Decimal("200")
    assert "steps: 200.00/50.00, 500.00/150.00" in LogEntry.objects.get().change_message


def test_a_bonus_points_campaign_has_its_earn_rule(client, owner):
    client.post(NEW_CAMPAIGN, campaign_data(kind="points", multiplier="1.5"))

    campaign = Campaign.objects.get()
    assert campaign.multiplier == Decimal("1.5")
    assert campaign.earn_rule.is_active
    assert campaign.earn_rule.multiplier == Decimal("1.5")


def test_the_fields_of_another_kind_are_not_used(client, owner):
    response = client.post(
        NEW_CAMPAIGN,
        campaign_data(kind="discount", multiplier="0", steps=[("100", "500")]),
    )

    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.multiplier == Decimal("2")  # the stored default, not 0
    assert not campaign.steps.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"discount_percent": "0"}, "discount_percent", "more than 0 and at most 100"),
        ({"discount_percent": "100.5"}, "discount_percent", "more than 0 and at most"),
        ({"discount_percent": ""}, "discount_percent", "more than 0 and at most 100"),
        (
            {"kind": "points", "multiplier": "1"},
            "multiplier",
            "more than 1 and at most 10",
        ),
        ({"kind": "points", "multiplier": "1.00"}, "multiplier", "more than 1"),
        ({"kind": "points", "multiplier": "10.5"}, "multiplier", "at most 10"),
        ({"kind": "points", "multiplier": "x"}, "multiplier", "Enter a number."),
        ({"ends_at": "BEFORE"}, "ends_at", "The end must be after the start."),
        ({"starts_at": ""}, "starts_at", "Enter when the campaign starts."),
        ({"name": ""}, "name", "Give the campaign a name"),
        ({"kind": "nothing"}, "kind", "Select a valid choice."),
        ({"coupon_design": "GOLD"}, "coupon_design", "“Gold gift” is for members"),
        ({"range": "999"}, "range", "Select a valid choice."),
    ],
)
def test_a_bad_campaign_is_shown_on_the_form_and_writes_nothing(
    client, owner, gold, silver, fields, field, message
):
    data = campaign_data(tiers=[silver.pk, gold.pk], **fields)
    if data.get("ends_at") == "BEFORE":
        data["ends_at"] = local(timezone.now() - timedelta(days=1))
    if data.get("coupon_design") == "GOLD":
        data["coupon_design"] = CouponDesign.objects.create(
            name="Gold gift",
            purpose=CouponDesign.Purpose.TIER,
            benefit_type=CouponDesign.BenefitType.SHIPPING,
            tier=gold,
        ).pk
    before = rows()

    response = client.post(NEW_CAMPAIGN, data)

    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in error for error in errors[field]), errors
    assert rows() == before
    assert not ConditionalOffer.objects.filter(name="Member day").exists()


def test_a_tier_coupon_may_go_to_an_audience_of_its_tier(client, owner, gold):
    design = CouponDesign.objects.create(
        name="Gold gift",
        purpose=CouponDesign.Purpose.TIER,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
        tier=gold,
    )

    response = client.post(
        NEW_CAMPAIGN, campaign_data(tiers=[gold.pk], coupon_design=design.pk)
    )

    assert response.status_code == 302
    assert Campaign.objects.get().coupon_design == design


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "A spend-X-save-Y campaign needs at least one step."),
        ([("200", "50"), ("200.00", "60")], "Two steps have the same spend"),
    ],
)
def test_bad_steps_are_refused_and_write_nothing(client, owner, steps, message):
    before = rows()

    response = client.post(NEW_CAMPAIGN, campaign_data(kind="spend_save", steps=steps))

    assert response.status_code == 200
    errors = [str(error) for error in response.context["formset"].non_form_errors()]
    assert any(message in error for error in errors), errors
    assert message in html_of(response)
    assert rows() == before


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        (("200", "200"), "amount", "The saving must be less than the spend."),
        (("200", "300"), "amount", "The saving must be less than the spend."),
        (("200", "0"), "amount", "The saving must be more than zero."),
        (("200", ""), "amount", "This field is required."),
        (("x", "50"), "threshold", "Enter a number."),
    ],
)
def test_a_bad_step_is_shown_on_its_row_and_writes_nothing(
    client, owner, step, field, message
):
    before = rows()

    response = client.post(
        NEW_CAMPAIGN, campaign_data(kind="spend_save", steps=[("500", "100"), step])
    )

    assert response.status_code == 200
    row = response.context["formset"].forms[1]
    assert message in [str(error) for error in row.errors[field]], row.errors
    assert rows() == before


def test_editing_a_campaigns_steps_resyncs_its_offer_and_is_logged(client, owner):
    client.post(
        NEW_CAMPAIGN,
        campaign_data(kind="spend_save", steps=[("200", "50"), ("500", "150")]),
    )
    campaign = Campaign.objects.get()
    low, high = campaign.steps.order_by("threshold")
    LogEntry.objects.all().delete()

    response = client.post(
        campaign_url(campaign),
        campaign_data(
            kind="spend_save",
            existing=[(low, "200", "50", True), (high, "500", "150", False)],
            steps=[("100", "20")],
            starts_at=local(campaign.starts_at),
            ends_at=local(campaign.ends_at),
        ),
        follow=True,
    )

    assert response.redirect_chain == [(CAMPAIGNS, 302)]
    assert list(campaign.steps.values_list("threshold", "amount")) == [
        (Decimal("100"), Decimal("20")),
        (Decimal("500"), Decimal("150")),
    ]
    campaign.refresh_from_db()
    campaign.offer.condition.refresh_from_db()
    assert campaign.offer.condition.value == Decimal("100")
    assert "Campaign “Member day” saved." in messages_of(response)
    entry = LogEntry.objects.get()
    assert entry.action_flag == CHANGE
    assert entry.change_message == (
        "Changed steps: 200.00/50.00, 500.00/150.00 → 100.00/20.00, 500.00/150.00"
    )


def test_a_step_may_be_replaced_by_one_of_the_same_spend_or_swap_spends(client, owner):
    client.post(
        NEW_CAMPAIGN,
        campaign_data(kind="spend_save", steps=[("200", "50"), ("500", "150")]),
    )
    campaign = Campaign.objects.get()
    low, high = campaign.steps.order_by("threshold")

    response = client.post(
        campaign_url(campaign),
        campaign_data(
            kind="spend_save",
            existing=[(low, "500", "120", False), (high, "200", "40", False)],
        ),
    )

    assert response.status_code == 302
    assert list(campaign.steps.values_list("threshold", "amount")) == [
        (Decimal("200"), Decimal("40")),
        (Decimal("500"), Decimal("120")),
    ]

    response = client.post(
        campaign_url(campaign),
        campaign_data(
            kind="spend_save",
            existing=[
                (step, str(step.threshold), str(step.amount), True)
                for step in campaign.steps.all()
            ],
            steps=[("200", "60")],
        ),
    )

    assert response.status_code == 302
    assert list(campaign.steps.values_list("threshold", "amount")) == [
        (Decimal("200"), Decimal("60"))
    ]


def test_editing_a_campaign_logs_each_change(client, owner, campaign, gold):
    response = client.post(
        campaign_url(campaign),
        campaign_data(
            discount_percent="20",
            tiers=[gold.pk],
            starts_at=local(campaign.starts_at),
            ends_at=local(campaign.ends_at),
            is_active="",
        ),
    )

    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.discount_percent, campaign.is_active) == (Decimal("20"), False)
    campaign.offer.refresh_from_db()
    assert campaign.offer.status == ConditionalOffer.SUSPENDED
    assert LogEntry.objects.get().change_message == (
        "Changed tiers: — → gold; discount_percent: 10.00 → 20.00; "
        "is_active: True → False"
    )


def test_a_bad_campaign_edit_changes_nothing(client, owner, campaign):
    before = rows()

    response = client.post(campaign_url(campaign), campaign_data(discount_percent="0"))

    assert response.status_code == 200
    assert rows() == before


def test_the_campaign_form_offers_ranges_and_issuing_designs(
    client, owner, staff_design
):
    teas = Range.objects.create(name="Teas")
    CouponDesign.objects.create(
        name="Switched off",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
        is_active=False,
    )

    html = html_of(client.get(NEW_CAMPAIGN))

    ranges = part(html, "id_range", "</select>")
    assert "All products" in ranges and "Teas" in ranges
    designs = part(html, "id_coupon_design", "</select>")
    assert "Apology" in designs and "Switched off" not in designs
    assert 'name="steps-TOTAL_FORMS"' in html
    assert f'value="{teas.pk}"' in ranges


# Campaigns: list and report ----------------------------------------------------------


def test_the_campaign_list_shows_each_campaign_and_its_status(
    client, owner, campaign, gold, silver
):
    now = timezone.now()
    campaign.tiers.set([gold, silver])
    later = Campaign.objects.create(
        name="Next week",
        kind=Campaign.Kind.POINTS,
        multiplier=Decimal("3"),
        starts_at=now + timedelta(days=7),
        ends_at=now + timedelta(days=8),
        range=Range.objects.create(name="Teas"),
    )
    over = Campaign.objects.create(
        name="Last month",
        kind=Campaign.Kind.SPEND_SAVE,
        starts_at=now - timedelta(days=40),
        ends_at=now - timedelta(days=30),
        is_active=False,
    )

    html = html_of(client.get(CAMPAIGNS))

    row = part(html, f"loyalty-campaign-{campaign.pk}", "</tr>")
    assert "Member-day discount" in row and "10%" in row
    assert "Silver, Gold" in row and "All products" in row
    assert "Running" in row and campaign_url(campaign) in row
    assert report_url(campaign) in row
    row = part(html, f"loyalty-campaign-{later.pk}", "</tr>")
    assert "Bonus points" in row and "× 3" in row
    assert "Scheduled" in row and "Teas" in row and "All members" in row
    row = part(html, f"loyalty-campaign-{over.pk}", "</tr>")
    assert "Ended" in row and "<td>No</td>" in row


def test_the_campaign_list_runs_the_same_queries_for_1_or_6_campaigns(
    client, owner, campaign, gold, django_assert_max_num_queries
):
    campaign.tiers.add(gold)
    client.get(CAMPAIGNS)
    with django_assert_max_num_queries(1000) as one:
        client.get(CAMPAIGNS)

    for number in range(5):
        more = Campaign.objects.create(
            name=f"Campaign {number}",
            kind=Campaign.Kind.DISCOUNT,
            discount_percent=5,
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            range=Range.objects.create(name=f"Range {number}"),
        )
        more.tiers.add(gold)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(CAMPAIGNS)

    assert len(response.context["campaigns"]) == 6


def test_the_report_shows_the_figures_after_a_real_order(client, owner, tea):
    client.post(
        NEW_CAMPAIGN,
        campaign_data(kind="spend_save", name="Spend more", steps=[("200", "50")]),
    )
    campaign = Campaign.objects.get()
    member = new_member()
    shopper = Client()
    shopper.force_login(member.user)
    order = place_order(shopper, tea, quantity=2)
    grant(owner, "view_order", app_label="order")

    response = client.get(report_url(campaign))

    report = response.context["report"]
    assert (report.orders, report.discount) == (1, Decimal("50.00"))
    assert report.revenue == order.total_incl_tax
    html = html_of(response)
    figures = part(html, "loyalty-campaign-figures")
    assert 'id="loyalty-report-orders">1<' in figures
    assert currency(order.total_incl_tax) in part(
        figures, "loyalty-report-revenue", "</tr>"
    )
    assert currency(Decimal("50.00")) in part(
        figures, "loyalty-report-discount", "</tr>"
    )
    assert "Spend " + currency(Decimal("200")) in html
    row = part(html, "loyalty-campaign-orders")
    order_link = reverse("dashboard:order-detail", kwargs={"number": order.number})
    assert f'href="{order_link}">{order.number}</a>' in row
    assert f'{detail_url(member)}">{member.number}</a>' in row


def test_order_numbers_are_not_links_for_those_who_may_not_see_orders(
    client, owner, campaign
):
    member = new_member()
    CampaignOrder.objects.create(
        campaign=campaign,
        order_number="100042",
        user_id=member.user_id,
        revenue=Decimal("90"),
        discount=Decimal("10"),
    )

    html = html_of(client.get(report_url(campaign)))

    row = part(html, "loyalty-campaign-orders")
    assert "100042" in row
    assert reverse("dashboard:order-detail", kwargs={"number": "100042"}) not in row


def test_the_report_pages_its_orders_in_the_same_queries(
    client, owner, campaign, django_assert_max_num_queries
):
    members = [new_member() for _ in range(3)]

    def record(number):
        CampaignOrder.objects.create(
            campaign=campaign,
            order_number=f"1000{number:02}",
            user_id=members[number % 3].user_id,
            revenue=Decimal("100"),
            discount=Decimal("10"),
        )

    record(0)
    client.get(report_url(campaign))
    with django_assert_max_num_queries(1000) as one:
        client.get(report_url(campaign))

    for number in range(1, 25):
        record(number)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(report_url(campaign))

    assert len(response.context["orders"]) == 20
    assert response.context["report"].orders == 25
    assert response.context["report"].revenue == Decimal("2500")
    assert len(client.get(report_url(campaign), {"page": 2}).context["orders"]) == 5


def test_names_are_escaped_on_the_screens(client, owner, campaign, reward):
    Campaign.objects.filter(pk=campaign.pk).update(name="<b>Bold</b> day")
    Reward.objects.filter(pk=reward.pk).update(name="<script>x</script>")

    for url in (CAMPAIGNS, report_url(campaign), REWARDS, reward_url(reward)):
        raw = client.get(url).content.decode()

        assert "<b>Bold</b>" not in raw and "<script>x" not in raw, url
    assert "&lt;b&gt;Bold&lt;/b&gt; day" in client.get(CAMPAIGNS).content.decode()


def test_an_unknown_campaign_is_not_found(client, owner):
    for name in ("loyalty-campaign-update", "loyalty-campaign-report"):
        url = reverse(f"loyalty_dashboard:{name}", args=[999])
        assert client.get(url).status_code == 404


# Action rewards ----------------------------------------------------------------------


def test_every_action_is_listed_and_unconfigured_ones_are_off(
    client, owner, checkin_rule
):
    ActionRule.objects.create(action="review", points=50, is_active=False)

    html = html_of(client.get(ACTIONS))

    for code, label in ActionRule.Action.choices:
        assert str(label) in part(html, f"loyalty-action-{code}", "</tr>")
    row = part(html, "loyalty-action-checkin", "</tr>")
    assert "10" in row and "1 time per day" in row and ">On<" in row
    assert action_url(checkin_rule) in row
    row = part(html, "loyalty-action-review", "</tr>")
    assert "50" in row and "No cap" in row and ">Off<" in row
    row = part(html, "loyalty-action-signup", "</tr>")
    assert ">Off<" in row and new_action_url("signup") in row


def test_setting_up_an_action_saves_its_rule_and_logs_it(client, owner):
    response = client.post(
        new_action_url("checkin"),
        {"points": "5", "cap": "7", "cap_period": "week", "is_active": "on"},
        follow=True,
    )

    assert response.redirect_chain == [(ACTIONS, 302)]
    rule = ActionRule.objects.get()
    assert (rule.action, rule.points, rule.cap, rule.cap_period, rule.is_active) == (
        "checkin",
        5,
        7,
        "week",
        True,
    )
    assert "Action reward “Daily check-in” created." in messages_of(response)
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.content_type.model) == (ADDITION, "actionrule")
    assert entry.change_message == (
        "Created action reward: action: checkin; points: 5; cap: 7; "
        "cap_period: week; is_active: True"
    )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"points": "0"}, "points", "The points must be at least 1."),
        ({"points": "-3"}, "points", "The points must be at least 1."),
        ({"points": ""}, "points", "Enter the points the action earns."),
        ({"points": "2.5"}, "points", "Enter a whole number of points"),
        ({"cap": "0"}, "cap", "The cap must be at least 1"),
        ({"cap_period": "hour"}, "cap_period", "Select a valid choice."),
    ],
)
def test_a_bad_action_reward_is_refused_and_writes_nothing(
    client, owner, data, field, message
):
    before = rows()

    response = client.post(
        new_action_url("review"),
        {"points": "10", "cap": "", "cap_period": "day", "is_active": "on", **data},
    )

    assert response.status_code == 200
    errors = form_errors(response)
    assert any(message in error for error in errors[field]), errors
    assert rows() == before


def test_editing_an_action_reward_logs_the_change(client, owner, checkin_rule):
    response = client.post(
        action_url(checkin_rule),
        {"points": "20", "cap": "", "cap_period": "day"},
        follow=True,
    )

    assert response.redirect_chain == [(ACTIONS, 302)]
    checkin_rule.refresh_from_db()
    assert (checkin_rule.points, checkin_rule.cap, checkin_rule.is_active) == (
        20,
        None,
        False,
    )
    assert LogEntry.objects.get().change_message == (
        "Changed points: 10 → 20; cap: 1 → —; is_active: True → False"
    )
    assert ">Off<" in part(html_of(response), "loyalty-action-checkin", "</tr>")


def test_setting_up_an_action_that_has_a_rule_edits_it(client, owner, checkin_rule):
    response = client.get(new_action_url("checkin"))

    assert response.status_code == 302
    assert response.url == action_url(checkin_rule)
    response = client.post(new_action_url("checkin"), {"points": "99"})
    assert response.url == action_url(checkin_rule)
    assert ActionRule.objects.get().points == 10


def test_an_unknown_action_is_not_found(client, owner):
    assert client.get(new_action_url("dancing")).status_code == 404
    assert client.post(new_action_url("dancing"), {"points": "5"}).status_code == 404
    assert not ActionRule.objects.exists()


# Referrals ---------------------------------------------------------------------------


def referral(referrer, new, status=Referral.Status.PENDING, **fields):
    """A referral attached by the referrals service, then decided as asked."""
    made = referrals.attach_referral(new, referrals.referral_code(referrer))
    assert made is not None
    if status != Referral.Status.PENDING or fields:
        Referral.objects.filter(pk=made.pk).update(
            status=status, decided_at=timezone.now(), **fields
        )
    return Referral.objects.get(pk=made.pk)


@pytest.fixture
def family():
    """Ann referred Bo (rewarded on order 100001) and Cy (refused); Dee is pending
    from Bo."""
    ann = new_member(email="ann@example.com")
    bo = new_member(email="bo@example.com")
    cy = new_member(email="cy@example.com")
    dee = new_member(email="dee@example.com")
    return {
        "ann": ann,
        "bo": bo,
        "cy": cy,
        "dee": dee,
        "ann_bo": referral(ann, bo, Referral.Status.REWARDED, order_number="100001"),
        "ann_cy": referral(ann, cy, Referral.Status.REFUSED, reason="Same phone."),
        "bo_dee": referral(bo, dee),
    }


def listed(response):
    return [referral.pk for referral in response.context["referrals"]]


def test_the_referral_list_shows_both_members_status_and_first_order(
    client, owner, family
):
    grant(owner, "view_order", app_label="order")

    html = html_of(client.get(REFERRALS))

    row = part(html, f"loyalty-referral-{family['ann_bo'].pk}", "</tr>")
    assert family["ann"].number in row and "ann@example.com" in row
    assert family["bo"].number in row and "bo@example.com" in row
    assert detail_url(family["ann"]) in row and detail_url(family["bo"]) in row
    assert "Rewarded" in row
    order_link = reverse("dashboard:order-detail", kwargs={"number": "100001"})
    assert f'href="{order_link}">100001</a>' in row
    row = part(html, f"loyalty-referral-{family['ann_cy'].pk}", "</tr>")
    assert "Refused" in row and "Same phone." in row
    row = part(html, f"loyalty-referral-{family['bo_dee'].pk}", "</tr>")
    assert "Waiting for the first order" in row


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["bo_dee", "ann_cy", "ann_bo"]),
        ({"status": "refused"}, ["ann_cy"]),
        ({"status": "pending"}, ["bo_dee"]),
        ({"q": "ANN"}, ["ann_cy", "ann_bo"]),
        ({"q": "BO"}, ["bo_dee", "ann_bo"]),
        ({"q": "bo@EXAMPLE.com"}, ["bo_dee", "ann_bo"]),
        ({"q": "BO", "status": "rewarded"}, ["ann_bo"]),
        ({"q": "nobody@example.com"}, []),
    ],
)
def test_referrals_are_found_by_member_and_status(
    client, owner, family, params, expected
):
    params = dict(params)
    if params.get("q") in ("ANN", "BO"):
        params["q"] = family[params["q"].lower()].number.lower()

    response = client.get(REFERRALS, params)

    assert listed(response) == [family[name].pk for name in expected]


def test_a_bad_status_finds_nothing_and_says_why(client, owner, family):
    response = client.get(REFERRALS, {"status": "lost"})

    assert listed(response) == []
    assert "Select a valid choice." in html_of(response)


def test_the_referral_list_runs_the_same_queries_for_3_or_30_referrals(
    client, owner, family, django_assert_max_num_queries
):
    client.get(REFERRALS)
    with django_assert_max_num_queries(1000) as few:
        client.get(REFERRALS)

    referrer = family["ann"]
    for _ in range(27):
        referral(referrer, new_member())
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(REFERRALS)

    assert len(response.context["referrals"]) == 20
    assert response.context["paginator"].count == 30


def test_a_members_page_shows_who_referred_them_and_whom_they_referred(
    client, owner, family
):
    html = html_of(client.get(detail_url(family["bo"])))

    box = part(html, "loyalty-member-referrals")
    by = part(box, "loyalty-referred-by", "</tr>")
    assert family["ann"].number in by and "Rewarded" in by
    made = part(box, "loyalty-referrals-made", "</tr>")
    assert family["dee"].number in made and "Waiting for the first order" in made
    assert family["cy"].number not in box
    assert f"{REFERRALS}?q={family['bo'].number}" in box

    html = html_of(client.get(detail_url(family["ann"])))
    box = part(html, "loyalty-member-referrals")
    assert "Nobody" in part(box, "loyalty-referred-by", "</tr>")
    made = part(box, "loyalty-referrals-made", "</tr>")
    assert family["bo"].number in made and family["cy"].number in made


def test_the_referrals_box_shows_ten_and_says_there_are_more(client, owner):
    ann = new_member()
    for _ in range(12):
        referral(ann, new_member())

    response = client.get(detail_url(ann))

    assert len(response.context["referrals_made"]) == 10
    assert response.context["more_referrals"]
    assert response.context["referred_by"] is None


def test_without_the_referral_permission_the_box_has_no_list_link(client, family):
    client.force_login(grant(StaffFactory(), "view_member"))

    html = html_of(client.get(detail_url(family["bo"])))

    assert family["ann"].number in part(html, "loyalty-member-referrals")
    assert REFERRALS not in html


# The member page's coupon form: one coupon per form -----------------------------------


@pytest.fixture
def desk(client):
    user = grant(
        StaffFactory(first_name="Tia", last_name="Desk"), "view_member", "issue_coupon"
    )
    client.force_login(user)
    return user


def test_each_coupon_form_shown_has_a_new_key(client, desk, staff_design):
    member = new_member()

    first = client.get(detail_url(member)).context["coupon_form"]
    second = client.get(detail_url(member)).context["coupon_form"]

    assert first.initial["key"] != second.initial["key"]
    html = html_of(client.get(detail_url(member)))
    form = part(html, "loyalty-issue-coupon", "</form>")
    assert 'type="hidden" name="key"' in form


def test_submitting_the_same_coupon_form_twice_issues_one_coupon(
    client, desk, staff_design
):
    member = new_member()
    data = {"design": staff_design.pk, "reason": "Late parcel", "key": uuid.uuid4()}

    first = client.post(issue_url(member), data, follow=True)
    second = client.post(issue_url(member), data, follow=True)

    coupon = MemberCoupon.objects.get()
    assert coupon.key == f"staff:{data['key']}"
    assert coupon.voucher.code in " ".join(messages_of(first))
    assert messages_of(second) == [
        "This coupon was already issued; nothing was changed."
    ]
    assert LogEntry.objects.count() == 1
    assert Voucher.objects.count() == 1
    # A new form (a new key) issues a second coupon.
    client.post(issue_url(member), {**data, "key": uuid.uuid4()})
    assert MemberCoupon.objects.count() == 2


@pytest.mark.parametrize("key", [None, "", "not-a-uuid"])
def test_a_coupon_form_without_a_valid_key_is_refused(client, desk, staff_design, key):
    member = new_member()
    data = {"design": staff_design.pk, "reason": "Late parcel"}
    if key is not None:
        data["key"] = key

    response = client.post(issue_url(member), data, follow=True)

    assert messages_of(response) == [
        "No coupon was issued: This form is out of date: reload the page and try again."
    ]
    assert not MemberCoupon.objects.exists()
    assert not LogEntry.objects.exists()


# Free-product coupon designs (what product rewards give) -----------------------------


def design_data(**fields):
    data = {
        "name": "Free tea",
        "purpose": "reward",
        "benefit_type": "product",
        "value": "",
        "product": "",
        "minimum_spend": "0",
        "valid_days": "30",
        "is_active": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value not in (None, "")}


@pytest.fixture
def designer(client):
    user = grant(StaffFactory(), "add_coupondesign", "view_coupondesign")
    client.force_login(user)
    return user


NEW_DESIGN = reverse("loyalty_dashboard:loyalty-coupondesign-create")


def test_a_free_product_design_keeps_its_product_and_no_value(client, designer, tea):
    response = client.post(
        NEW_DESIGN, design_data(product=tea.pk, value="15"), follow=True
    )

    assert response.status_code == 200
    design = CouponDesign.objects.get()
    assert (design.benefit_type, design.product, design.value) == (
        "product",
        tea,
        Decimal("0"),
    )
    assert f"product: {tea}" in LogEntry.objects.get().change_message
    reward = Reward.objects.create(name="Tea on us", design=design, points_price=900)
    client.force_login(grant(designer, "view_reward"))
    row = part(html_of(client.get(REWARDS)), f"loyalty-reward-{reward.pk}", "</tr>")
    assert "Da Hong Pao free" in row


def test_a_free_product_design_needs_its_product(client, designer):
    response = client.post(NEW_DESIGN, design_data())

    assert response.status_code == 200
    assert form_errors(response)["product"] == [
        "Choose the product the coupon makes free."
    ]
    assert not CouponDesign.objects.exists()


def test_other_benefits_keep_no_product(client, designer, tea):
    client.post(
        NEW_DESIGN, design_data(benefit_type="percentage", value="10", product=tea.pk)
    )

    design = CouponDesign.objects.get()
    assert (design.value, design.product) == (Decimal("10.00"), None)


def test_a_free_product_designs_own_range_is_not_offered_to_campaigns(
    client, owner, tea
):
    design = CouponDesign.objects.create(
        name="Free tea",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.PRODUCT,
        product=tea,
    )
    design.refresh_from_db()
    assert design.product_range is not None
    teas = Range.objects.create(name="Teas")

    choices = list(client.get(NEW_CAMPAIGN).context["form"].fields["range"].queryset)

    assert teas in choices
    assert design.product_range not in choices


def test_saving_a_reward_never_puts_back_stock_redeemed_meanwhile(
    client, owner, reward
):
    """The form showed 5; a member redeemed one while staff edited the name."""
    from oscar_loyalty.services import ledger, rewards
    from oscar_loyalty.services.members import get_or_create_member

    member = get_or_create_member(UserFactory())
    ledger.adjust(
        member=member, points=5000, reason="gift", actor=ledger.Actor(None, "test")
    )
    rewards.redeem_reward(member=member, reward=reward)

    response = client.post(
        reward_url(reward),
        reward_data(reward.design, name="Renamed", stock="5", stock_seen="5"),
    )

    assert response.status_code == 200
    assert "the stock is 4 now" in response.content.decode()
    reward.refresh_from_db()
    assert (reward.name, reward.stock) == ("¥20 voucher", 4)
