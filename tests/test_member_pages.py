"""wagtail_members' pages with the programme's data: the member home, the benefit
catalogue and benefit pages, the reward catalogue with its redeem step, tier
display data, and tier-gated pages (403 in place for a lower tier, the login form
for visitors, never a loop).

Real Wagtail pages served by Wagtail's views on the example shop's URLs, real
tiers, ledger and coupons of ``oscar_loyalty``.
"""

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from wagtail.documents import get_document_model
from wagtail.models import Collection, CollectionViewRestriction, PageViewRestriction
from wagtail.test.utils import WagtailPageTestCase

from example_shop.models import HomePage
from oscar_loyalty.models import (
    CouponDesign,
    Member,
    MemberCoupon,
    Reward,
    RewardRedemption,
    Tier,
)
from oscar_loyalty.services import ledger, tiers
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory
from tests.test_pages import make_home_page, make_member_home_page
from wagtail_members.models import (
    BenefitCataloguePage,
    BenefitPage,
    MemberHomePage,
    RewardCataloguePage,
    TierDisplay,
)

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r'name="token" value="([^"]+)"')


# Fixtures -----------------------------------------------------------------------------


@pytest.fixture
def programme(db):
    """Regular / Silver ¥1,000 / Gold ¥4,000 (8 % off, free shipping, ×1.5) /
    Diamond ¥10,000, each with its group."""
    made = {}
    for code, rank, threshold, extra in (
        ("regular", 0, 0, {}),
        ("silver", 1, 1000, {"discount_percent": 5}),
        ("gold", 2, 4000, {
            "discount_percent": 8, "free_shipping": True,
            "points_multiplier": Decimal("1.5"), "colour": "#c9a227",
        }),
        ("diamond", 3, 10000, {"discount_percent": 12, "free_shipping": True}),
    ):  # fmt: skip
        made[code] = Tier.objects.create(
            code=code, name=code.title(), rank=rank, threshold=threshold, **extra
        )
    return made


@pytest.fixture
def home(db):
    return make_home_page()


@pytest.fixture
def members(home):
    return make_member_home_page(home)


@pytest.fixture
def benefits(members, programme):
    catalogue = members.add_child(
        instance=BenefitCataloguePage(
            title="Tier benefits", slug="benefits", intro="<p>What you get.</p>"
        )
    )
    catalogue.add_child(
        instance=BenefitPage(
            title="Tasting events",
            slug="tasting-events",
            summary="Taste the new harvest with our buyers.",
            minimum_tier="gold",
        )
    )
    catalogue.add_child(
        instance=BenefitPage(
            title="Birthday treat", slug="birthday-treat", summary="A gift."
        )
    )
    return catalogue


@pytest.fixture
def rewards_page(members):
    return members.add_child(
        instance=RewardCataloguePage(
            title="Rewards", slug="rewards", intro="<p>Spend your points.</p>"
        )
    )


@pytest.fixture
def voucher(db):
    design = CouponDesign.objects.create(
        name="¥20 off",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        valid_days=30,
    )
    return Reward.objects.create(
        name="¥20 voucher", design=design, points_price=2000, stock=5
    )


def member_in(tier=None, points=0):
    """A member with ``points`` to spend, in ``tier`` and its tier groups."""
    member = get_or_create_member(UserFactory())
    if tier is not None:
        Member.objects.filter(pk=member.pk).update(tier=tier)
        member.refresh_from_db()
        tiers.sync_member_groups([member])
    if points:
        ledger.adjust(
            member=member,
            points=points,
            reason="opening balance",
            actor=ledger.Actor.from_user(StaffFactory()),
        )
        member.refresh_from_db()
    return member


def signed_in(member, *, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(member.user)
    return client


def html_of(response, status=200):
    assert response.status_code == status, response
    return unescape(response.content.decode())


def said(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def gold_only(page, programme):
    """Restrict ``page`` to Gold and above, as an editor does in the Privacy
    dialog: the groups of Gold and Diamond."""
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.GROUPS
    )
    restriction.groups.set(
        Group.objects.filter(
            name__in=[programme["gold"].group_name, programme["diamond"].group_name]
        )
    )
    return restriction


# Page types ---------------------------------------------------------------------------


class TestMemberPageTypes(WagtailPageTestCase):
    def test_the_member_home_holds_one_benefit_and_one_reward_catalogue(self):
        from wagtail_members.models import CommunityIndexPage

        self.assertAllowedSubpageTypes(
            MemberHomePage,
            {BenefitCataloguePage, RewardCataloguePage, CommunityIndexPage},
        )
        self.assertCanCreateAt(MemberHomePage, BenefitCataloguePage)
        self.assertCanCreateAt(MemberHomePage, RewardCataloguePage)
        self.assertCanNotCreateAt(HomePage, BenefitCataloguePage)
        self.assertCanNotCreateAt(HomePage, RewardCataloguePage)

    def test_benefit_pages_live_in_the_benefit_catalogue_only(self):
        self.assertAllowedParentPageTypes(BenefitPage, {BenefitCataloguePage})
        self.assertAllowedSubpageTypes(BenefitCataloguePage, {BenefitPage})
        self.assertAllowedSubpageTypes(BenefitPage, set())
        self.assertAllowedSubpageTypes(RewardCataloguePage, set())
        self.assertCanNotCreateAt(MemberHomePage, BenefitPage)

    def test_a_member_home_has_at_most_one_catalogue_of_each_kind(self):
        home = make_home_page()
        members = make_member_home_page(home)
        members.add_child(
            instance=BenefitCataloguePage(title="Benefits", slug="benefits")
        )
        members.add_child(instance=RewardCataloguePage(title="Rewards", slug="rewards"))
        assert not BenefitCataloguePage.can_create_at(members)
        assert not RewardCataloguePage.can_create_at(members)

    def test_an_editor_creates_a_benefit_page_for_gold_members_in_the_admin(self):
        Tier.objects.create(code="gold", name="Gold", rank=2, threshold=4000)
        home = make_home_page()
        catalogue = make_member_home_page(home).add_child(
            instance=BenefitCataloguePage(title="Benefits", slug="benefits")
        )
        self.login()
        from wagtail.test.utils.form_data import nested_form_data, streamfield

        self.assertCanCreate(
            catalogue,
            BenefitPage,
            nested_form_data(
                {
                    "title": "Tasting events",
                    "slug": "tasting",
                    "summary": "Taste the new harvest.",
                    "minimum_tier": "gold",
                    "body": streamfield([("heading", "When")]),
                }
            ),
        )
        assert BenefitPage.objects.get(slug="tasting").minimum_tier == "gold"

    def test_editors_create_every_member_page_type_in_the_admin(self):
        from wagtail.test.utils.form_data import (
            nested_form_data,
            rich_text,
            streamfield,
        )

        from wagtail_members.models import (
            ArticlePage,
            CommunityIndexPage,
            EventPage,
            StoryPage,
        )

        home = make_home_page()
        members = make_member_home_page(home)
        self.login()
        self.assertCanCreate(
            members,
            BenefitCataloguePage,
            nested_form_data(
                {"title": "Benefits", "slug": "benefits", "body": streamfield([])}
            ),
        )
        self.assertCanCreate(
            members,
            RewardCataloguePage,
            nested_form_data(
                {"title": "Rewards", "slug": "rewards", "body": streamfield([])}
            ),
        )
        self.assertCanCreate(
            members,
            CommunityIndexPage,
            nested_form_data(
                {"title": "Community", "slug": "community", "intro": rich_text("")}
            ),
        )
        community = CommunityIndexPage.objects.get()
        for page_class, extra in (
            (ArticlePage, {}),
            (EventPage, {"starts_at": "2027-04-01 18:00", "place": "Hangzhou"}),
            (StoryPage, {"author_name": "Mei"}),
        ):
            slug = page_class.__name__.lower()
            self.assertCanCreate(
                community,
                page_class,
                nested_form_data(
                    {
                        "title": slug,
                        "slug": slug,
                        "summary": "",
                        "body": streamfield([]),
                        **extra,
                    }
                ),
            )
        assert EventPage.objects.get().place == "Hangzhou"
        assert StoryPage.objects.get().submitted_by is None  # not an editor's field

    def test_community_posts_live_in_the_community_index_only(self):
        from wagtail_members.models import (
            ArticlePage,
            CommunityIndexPage,
            EventPage,
            StoryPage,
        )

        self.assertAllowedSubpageTypes(
            CommunityIndexPage, {ArticlePage, EventPage, StoryPage}
        )
        for post in (ArticlePage, EventPage, StoryPage):
            self.assertAllowedParentPageTypes(post, {CommunityIndexPage})
            self.assertAllowedSubpageTypes(post, set())
        self.assertAllowedParentPageTypes(CommunityIndexPage, {MemberHomePage})

    def test_the_reward_catalogue_routes_its_redeem_step(self):
        home = make_home_page()
        page = make_member_home_page(home).add_child(
            instance=RewardCataloguePage(title="Rewards", slug="rewards")
        )
        self.assertPageIsRoutable(page)
        self.assertPageIsRoutable(page, "redeem/7/")
        self.assertPageIsRenderable(page)


def test_a_benefit_page_for_a_tier_the_programme_has_not_is_refused(benefits):
    page = BenefitPage(title="Lounge", slug="lounge", minimum_tier="platinum")

    with pytest.raises(ValidationError) as refused:
        page.full_clean()

    assert "There is no tier platinum in the programme." in str(refused.value)


# Member home --------------------------------------------------------------------------


def test_a_visitor_gets_the_pitch_and_a_join_button_that_comes_back(client, members):
    html = html_of(client.get("/members/"))

    assert "Points on every order, prices for members." in html
    assert 'id="member-join-button" href="/shop/accounts/register/?next=/members/"' in (
        html
    )
    assert 'id="member-summary"' not in html


def test_joining_from_the_member_home_comes_back_to_it(client, members):
    response = client.post(
        "/shop/accounts/register/?next=/members/",
        {
            "email": "new@example.com",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "redirect_url": "/members/",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/members/"
    assert 'id="member-summary"' in html_of(client.get("/members/"))


def test_a_member_sees_points_tier_progress_entries_and_coupons(
    members, programme, benefits, rewards_page
):
    member = member_in(programme["silver"], points=1200)
    ledger.earn(member=member, key="pending:1", points=80, order_number="100042")
    design = CouponDesign.objects.create(
        name="Birthday treat",
        purpose=CouponDesign.Purpose.BIRTHDAY,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=20,
    )
    from oscar_loyalty.services import coupons

    coupon = coupons.issue_coupon(member=member, design=design, key="home:1")

    html = html_of(signed_in(member).get("/members/"))

    assert re.search(r'id="member-points">1,?200<', html)
    assert 'id="member-pending">80<' in html
    assert 'data-tier="silver"' in html and ">Silver</span>" in html
    # Nothing spent yet: the whole of Gold's threshold is still to go.
    assert re.search(r"Spend (CN)?¥4,?000\.00 more .*for Gold\.", html)
    assert "100042" in html  # the latest entries
    assert coupon.voucher.code in html
    assert 'href="/members/benefits/"' in html
    assert 'href="/members/rewards/"' in html
    assert 'id="member-join"' not in html


def test_points_expiring_soon_show_with_their_first_date(members, programme):
    member = member_in(programme["silver"], points=500)
    lot = member.lots.get()
    soon = timezone.now() + timedelta(days=20)
    type(lot).objects.filter(pk=lot.pk).update(expires_at=soon)

    html = html_of(signed_in(member).get("/members/"))

    assert 'id="member-expiring">500<' in html
    assert "first on" in html


def test_a_signed_in_shopper_without_a_member_account_gets_none_made(client, members):
    user = UserFactory()
    client.force_login(user)

    html = html_of(client.get("/members/"))

    assert 'id="member-not-yet"' in html
    assert not Member.objects.filter(user=user).exists()


# Benefit catalogue --------------------------------------------------------------------


def comparison(html):
    table = html.split('id="member-comparison"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [
        [
            re.sub(r"<[^>]+>", " ", cell).split()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def test_the_benefit_catalogue_compares_the_tiers_from_the_programme(
    client, benefits, programme
):
    html = html_of(client.get("/members/benefits/"))

    header, multiplier, discount, shipping, *pages = comparison(html)
    assert [cell[0] for cell in header[1:]] == ["Regular", "Silver", "Gold", "Diamond"]
    assert "4,000.00" in " ".join(header[3]) or "4000.00" in " ".join(header[3])
    assert multiplier[1:] == [["—", "not", "included"]] * 2 + [["×1.5"]] + [
        ["—", "not", "included"]
    ]
    assert [cell[0] for cell in discount[1:]] == ["—", "5%", "8%", "12%"]
    assert [cell[0] for cell in shipping[1:]] == ["—", "—", "✓", "✓"]
    tasting = next(row for row in pages if row[0] == ["Tasting", "events"])
    assert [cell[0] for cell in tasting[1:]] == ["—", "—", "✓", "✓"]
    birthday = next(row for row in pages if row[0] == ["Birthday", "treat"])
    assert [cell[0] for cell in birthday[1:]] == ["✓", "✓", "✓", "✓"]


def test_the_catalogue_marks_the_members_own_tier(benefits, programme):
    member = member_in(programme["gold"])

    html = html_of(signed_in(member).get("/members/benefits/"))

    assert 'member-current-tier" data-tier="gold"' in html


def test_a_benefit_page_says_which_tiers_it_is_for(client, benefits, programme):
    html = html_of(client.get("/members/benefits/tasting-events/"))

    assert "Taste the new harvest with our buyers." in html
    tiers_line = html.split('id="member-benefit-tiers"')[1].split("</p>")[0]
    assert re.findall(r'data-tier="(\w+)"', tiers_line) == ["gold", "diamond"]


def test_editors_display_data_shows_instead_of_the_programmes(
    client, benefits, programme
):
    TierDisplay.objects.create(
        tier_code="gold",
        display_name="Golden Leaf",
        colour="#123456",
        short_description="For our most loyal tea drinkers.",
    )

    html = html_of(client.get("/members/benefits/"))

    assert "Golden Leaf" in html
    assert "background-color: #123456; color: #ffffff;" in html
    assert "For our most loyal tea drinkers." in html


def test_tier_display_refuses_a_colour_that_is_not_one(programme):
    display = TierDisplay(tier_code="gold", colour="red;x:y")

    with pytest.raises(ValidationError) as refused:
        display.full_clean()

    assert "colour" in refused.value.message_dict


# Reward catalogue ---------------------------------------------------------------------


def test_a_visitor_sees_the_rewards_and_is_asked_to_sign_in_to_redeem(
    client, rewards_page, voucher
):
    html = html_of(client.get("/members/rewards/"))

    assert "¥20 voucher" in html and "2,000 points" in html
    assert "5 left" in html
    assert "Sign in to redeem" in html
    response = client.get(f"/members/rewards/redeem/{voucher.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/shop/accounts/login/?next=")


def test_a_member_confirms_and_redeems_a_reward_on_the_wagtail_page(
    rewards_page, voucher, programme
):
    member = member_in(programme["silver"], points=2500)
    client = signed_in(member, csrf=True)

    confirm = html_of(client.get(f"/members/rewards/redeem/{voucher.pk}/"))
    assert 'id="member-confirm-left">500 points' in confirm
    token = TOKEN.search(confirm).group(1)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm).group(1)
    response = client.post(
        f"/members/rewards/redeem/{voucher.pk}/",
        {
            "reward": voucher.pk,
            "price": 2000,
            "token": token,
            "csrfmiddlewaretoken": csrf,
        },
    )

    assert response.status_code == 302 and response["Location"] == "/members/rewards/"
    member.refresh_from_db()
    assert member.available == 500
    coupon = MemberCoupon.objects.get(member=member)
    assert any(coupon.voucher.code in message for message in said(response))
    voucher.refresh_from_db()
    assert voucher.stock == 4


def test_redeeming_without_the_csrf_token_is_refused_and_writes_nothing(
    rewards_page, voucher, programme
):
    member = member_in(programme["silver"], points=2500)
    client = signed_in(member, csrf=True)

    response = client.post(
        f"/members/rewards/redeem/{voucher.pk}/",
        {"reward": voucher.pk, "price": 2000, "token": "a" * 32},
    )

    assert response.status_code == 403
    assert not RewardRedemption.objects.exists()


def test_a_member_without_enough_points_is_told_why_and_nothing_is_written(
    rewards_page, voucher, programme
):
    member = member_in(programme["silver"], points=500)
    client = signed_in(member)

    confirm = html_of(client.get(f"/members/rewards/redeem/{voucher.pk}/"))
    assert "You need 1,500 more points." in confirm
    assert 'id="member-redeem-form"' not in confirm
    response = client.post(
        f"/members/rewards/redeem/{voucher.pk}/",
        {"reward": voucher.pk, "price": 2000, "token": "b" * 32},
    )

    assert response["Location"] == "/members/rewards/"
    assert any("points" in message for message in said(response))
    assert not RewardRedemption.objects.exists()
    member.refresh_from_db()
    assert member.available == 500


def test_the_same_confirmation_posted_twice_redeems_once(
    rewards_page, voucher, programme
):
    member = member_in(programme["silver"], points=5000)
    client = signed_in(member)
    confirm = html_of(client.get(f"/members/rewards/redeem/{voucher.pk}/"))
    form = {"reward": voucher.pk, "price": 2000, "token": TOKEN.search(confirm)[1]}

    client.post(f"/members/rewards/redeem/{voucher.pk}/", form)
    client.post(f"/members/rewards/redeem/{voucher.pk}/", form)

    assert RewardRedemption.objects.count() == 1
    member.refresh_from_db()
    assert member.available == 3000


def test_an_unknown_reward_is_a_message_not_an_error(rewards_page, programme):
    member = member_in(programme["silver"], points=500)
    client = signed_in(member)

    response = client.get("/members/rewards/redeem/999999/")

    assert response.status_code == 302
    assert response["Location"] == "/members/rewards/"
    assert said(response)


# Tier-gated pages ---------------------------------------------------------------------


@pytest.fixture
def gold_page(benefits, programme):
    page = (
        BenefitCataloguePage.objects.get(pk=benefits.pk)
        .get_children()
        .get(slug="tasting-events")
    )
    gold_only(page, programme)
    return page


def test_the_catalogue_lists_a_gated_benefit_only_to_those_who_may_open_it(
    client, gold_page, programme
):
    assert "Tasting events" not in html_of(client.get("/members/benefits/"))
    silver = signed_in(member_in(programme["silver"]))
    assert "Tasting events" not in html_of(silver.get("/members/benefits/"))
    gold = signed_in(member_in(programme["gold"]))
    assert "Tasting events" in html_of(gold.get("/members/benefits/"))


def test_a_silver_member_gets_a_friendly_403_with_the_way_to_gold(gold_page, programme):
    member = member_in(programme["silver"], points=0)

    response = signed_in(member).get("/members/benefits/tasting-events/")

    html = html_of(response, status=403)
    assert "For Gold members and above" in html
    assert "You are a Silver member." in html
    assert re.search(r"Spend (CN)?¥4,?000\.00 more to reach Gold\.", html)
    assert 'href="/members/benefits/"' in html
    assert "Taste the new harvest" not in html
    assert "Tasting events" not in html  # not even the title
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("code", ["gold", "diamond"])
def test_gold_and_diamond_members_read_the_gold_page(gold_page, programme, code):
    member = member_in(programme[code])

    html = html_of(signed_in(member).get("/members/benefits/tasting-events/"))

    assert "Taste the new harvest with our buyers." in html


def test_a_visitor_gets_the_login_form_never_a_loop(client, gold_page):
    response = client.get("/members/benefits/tasting-events/", follow=True)

    assert response.status_code == 200
    assert [url for url, _status in response.redirect_chain] == [
        "/club/join/?next=/members/benefits/tasting-events/",
        "/shop/accounts/login/?next=/members/benefits/tasting-events/",
    ]
    assert 'name="login_submit"' in response.content.decode()


def test_a_silver_member_sent_to_the_join_view_gets_the_403_not_the_login(
    gold_page, programme
):
    member = member_in(programme["silver"])

    response = signed_in(member).get(
        "/club/join/?next=/members/benefits/tasting-events/"
    )

    assert response.status_code == 403
    assert "For Gold members and above" in response.content.decode()


def test_the_join_view_sends_a_member_who_may_read_it_back(gold_page, programme):
    member = member_in(programme["gold"])

    response = signed_in(member).get(
        "/club/join/?next=/members/benefits/tasting-events/"
    )

    assert response.status_code == 302
    assert response["Location"] == "/members/benefits/tasting-events/"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "", "/shop/no-such-thing/"]
)
def test_the_join_view_never_sends_a_member_away_or_round(programme, next_url):
    """Anything the view cannot tell is a page or document they may now read is a
    403 here: neither another site nor back where they came from (a loop)."""
    member = member_in(programme["silver"])

    response = signed_in(member).get(f"/club/join/?next={next_url}")

    assert response.status_code == 403
    assert "This page is for a group of members you are not in." in (
        response.content.decode()
    )


def test_a_page_for_a_group_that_is_not_a_tier_says_so(benefits, programme):
    page = benefits.get_children().get(slug="birthday-treat")
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.GROUPS
    )
    restriction.groups.set([Group.objects.create(name="Buyers")])
    member = member_in(programme["diamond"])

    response = signed_in(member).get("/members/benefits/birthday-treat/")

    assert response.status_code == 403
    assert "This page is for a group of members you are not in." in (
        response.content.decode()
    )


def test_a_document_of_a_gold_collection_gets_the_same_403(
    programme, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    collection = Collection.get_first_root_node().add_child(name="Gold only")
    restriction = CollectionViewRestriction.objects.create(
        collection=collection, restriction_type=CollectionViewRestriction.GROUPS
    )
    restriction.groups.set([Group.objects.get(name=programme["gold"].group_name)])
    document = get_document_model()(title="Price list", collection=collection)
    document.file.save("prices.txt", ContentFile(b"gold prices"))
    member = member_in(programme["silver"])

    response = signed_in(member).get(document.url, follow=True)

    assert response.status_code == 403
    assert "For Gold members and above" in response.content.decode()
    gold = signed_in(member_in(programme["gold"])).get(document.url)
    assert gold.status_code == 200


# Community ----------------------------------------------------------------------------


@pytest.fixture
def community(members, programme):
    from wagtail_members.models import (
        ArticlePage,
        CommunityIndexPage,
        EventPage,
        StoryPage,
    )

    index = members.add_child(
        instance=CommunityIndexPage(
            title="Community",
            slug="community",
            intro="<p>News.</p>",
            show_in_menus=True,
        )
    )
    index.add_child(
        instance=ArticlePage(
            title="Brewing oolong", slug="brewing-oolong", summary="Hot water."
        )
    )
    gold_event = index.add_child(
        instance=EventPage(
            title="Gold tasting night",
            slug="gold-tasting-night",
            summary="Oolong tasting for Gold members.",
            starts_at=timezone.now() + timedelta(days=10),
            place="Hangzhou",
            show_in_menus=True,
        )
    )
    gold_only(gold_event, programme)
    members_story = index.add_child(
        instance=StoryPage(
            title="My first gaiwan", slug="first-gaiwan", summary="A story."
        )
    )
    PageViewRestriction.objects.create(
        page=members_story, restriction_type=PageViewRestriction.LOGIN
    )
    return index


def listed(html):
    return re.findall(r'<h2 class="h5 mb-1"><a href="[^"]+">([^<]+)</a>', html)


def test_the_community_lists_only_what_the_reader_may_open(
    client, community, programme
):
    assert listed(html_of(client.get("/members/community/"))) == ["Brewing oolong"]
    silver = signed_in(member_in(programme["silver"]))
    assert sorted(listed(html_of(silver.get("/members/community/")))) == [
        "Brewing oolong",
        "My first gaiwan",
    ]
    gold = signed_in(member_in(programme["gold"]))
    assert sorted(listed(html_of(gold.get("/members/community/")))) == [
        "Brewing oolong",
        "Gold tasting night",
        "My first gaiwan",
    ]


def test_the_community_filters_by_kind(community, programme):
    gold = signed_in(member_in(programme["gold"]))

    html = html_of(gold.get("/members/community/?kind=event"))

    assert listed(html) == ["Gold tasting night"]


def test_an_event_says_when_where_and_for_whom(community, programme):
    gold = signed_in(member_in(programme["gold"]))

    html = html_of(gold.get("/members/community/gold-tasting-night/"))

    assert 'id="member-event-place">Hangzhou<' in html
    assert "For Gold members and above" in html


def test_an_event_cannot_end_before_it_starts(community):
    from wagtail_members.models import EventPage

    event = EventPage(
        title="Backwards",
        slug="backwards",
        starts_at=timezone.now(),
        ends_at=timezone.now() - timedelta(hours=1),
    )
    with pytest.raises(ValidationError) as refused:
        event.full_clean()
    assert "ends_at" in refused.value.message_dict


def test_the_member_menu_leaves_out_what_the_reader_may_not_open(
    client, community, programme
):
    lounge = community.get_parent().add_child(
        instance=RewardCataloguePage(
            title="Members lounge", slug="lounge", show_in_menus=True
        )
    )
    PageViewRestriction.objects.create(
        page=lounge, restriction_type=PageViewRestriction.LOGIN
    )

    visitor = html_of(client.get("/"))
    assert 'class="dropdown-item" href="/members/community/">Community</a>' in visitor
    assert "Members lounge" not in visitor
    member = html_of(signed_in(member_in(programme["silver"])).get("/"))
    assert 'href="/members/lounge/">Members lounge</a>' in member


def test_member_search_finds_only_what_the_reader_may_open(
    client, community, programme
):
    visitor = html_of(client.get("/club/search/?q=tasting"))
    assert "Gold tasting night" not in visitor
    gold = signed_in(member_in(programme["gold"]))
    assert "Gold tasting night" in html_of(gold.get("/club/search/?q=tasting"))
    silver = signed_in(member_in(programme["silver"]))
    assert "Gold tasting night" not in html_of(silver.get("/club/search/?q=tasting"))


def test_the_sitemap_lists_public_pages_only(client, community):
    xml = client.get("/sitemap.xml").content.decode()

    assert "/members/community/brewing-oolong/" in xml
    assert "gold-tasting-night" not in xml
    assert "first-gaiwan" not in xml


def test_the_feed_carries_public_posts_only(client, community):
    response = client.get("/club/feed/")

    assert response.status_code == 200
    xml = response.content.decode()
    assert "<title>Brewing oolong</title>" in xml
    assert "Gold tasting night" not in xml and "My first gaiwan" not in xml


def test_the_api_and_previews_are_not_a_way_round(client, community, programme):
    """The example shop enables no Wagtail API; previews are admin views."""
    event = community.get_children().get(slug="gold-tasting-night")
    assert client.get("/api/v2/pages/").status_code == 404
    member = signed_in(member_in(programme["silver"]))
    preview = member.get(f"/cms/pages/{event.pk}/edit/preview/")
    assert preview.status_code == 302
    assert "/cms/login/" in preview["Location"]


# Stories: submission, moderation, reward ---------------------------------------------


@pytest.fixture
def moderated(community):
    """A moderation workflow on the community, as an editor sets it up: one group
    approval task for the "Moderators" group."""
    from django.contrib.auth.models import Permission
    from wagtail.models import (
        GroupApprovalTask,
        GroupPagePermission,
        Workflow,
        WorkflowPage,
        WorkflowTask,
    )

    moderators, _ = Group.objects.get_or_create(name="Community moderators")
    for codename in ("change_page", "publish_page"):
        GroupPagePermission.objects.create(
            group=moderators,
            page=community,
            permission=Permission.objects.get(
                content_type__app_label="wagtailcore", codename=codename
            ),
        )
    task = GroupApprovalTask.objects.create(name="Moderators approve")
    task.groups.set([moderators])
    workflow = Workflow.objects.create(name="Community moderation")
    WorkflowTask.objects.create(workflow=workflow, task=task, sort_order=0)
    WorkflowPage.objects.create(page=community, workflow=workflow)
    moderator = StaffFactory(is_superuser=False)
    moderator.groups.add(moderators)
    return moderator


@pytest.fixture
def story_rule(db):
    from oscar_loyalty.models import ActionRule

    return ActionRule.objects.create(
        action=ActionRule.Action.STORY,
        points=100,
        cap=2,
        cap_period=ActionRule.Period.MONTH,
    )


STORY = {
    "title": "Cold brew at the office",
    "text": "I brew Long Jing cold overnight.\n\nIt is sweet & <b>never</b> bitter.",
    "name": "Mei",
}


def test_a_member_shares_a_story_that_waits_for_the_moderators(
    community, moderated, programme
):
    from wagtail_members.models import StoryPage

    member = member_in(programme["silver"])
    client = signed_in(member)

    response = client.post("/club/share/", STORY)

    assert response.status_code == 302
    assert response["Location"] == "/members/community/"
    story = StoryPage.objects.get(submitted_by=member.user)
    assert not story.live
    assert story.author_name == "Mei"
    body = str(story.body[0].value)
    assert "&lt;b&gt;never&lt;/b&gt;" in body and "<b>" not in body
    assert story.workflow_in_progress
    assert "Cold brew at the office" not in html_of(client.get("/members/community/"))


def test_a_moderator_approves_the_story_and_its_author_earns_the_reward(
    community, moderated, programme, story_rule, django_capture_on_commit_callbacks
):
    from oscar_loyalty.models import ActionAward
    from wagtail_members.community import submit_story

    member = member_in(programme["silver"])
    story = submit_story(
        member.user, index=community, title="Cold brew", text=STORY["text"]
    )
    task_state = story.current_workflow_task_state

    with django_capture_on_commit_callbacks(execute=True):
        task_state.task.specific.on_action(task_state.specific, moderated, "approve")

    story.refresh_from_db()
    assert story.live
    award = ActionAward.objects.get(member=member)
    assert award.key == f"story:{story.pk}"
    member.refresh_from_db()
    assert member.available == 100
    # Published again later: no second reward.
    with django_capture_on_commit_callbacks(execute=True):
        story.save_revision().publish()
    assert ActionAward.objects.filter(member=member).count() == 1


def test_a_deleted_published_story_takes_its_points_back(
    community, moderated, programme, story_rule, django_capture_on_commit_callbacks
):
    from oscar_loyalty.models import ActionAward
    from wagtail_members.community import submit_story

    member = member_in(programme["silver"])
    story = submit_story(
        member.user, index=community, title="Cold brew", text=STORY["text"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        story.save_revision().publish()
    with django_capture_on_commit_callbacks(execute=True):
        story.delete()

    award = ActionAward.objects.get(member=member)
    assert award.reversed_at is not None
    member.refresh_from_db()
    assert member.available == 0


def test_a_member_may_have_three_stories_waiting_at_most(
    community, moderated, programme
):
    from wagtail_members.models import StoryPage

    member = member_in(programme["silver"])
    client = signed_in(member)
    for number in range(3):
        client.post("/club/share/", {**STORY, "title": f"Story {number}"})

    response = client.post("/club/share/", {**STORY, "title": "One more"})

    assert response.status_code == 200
    assert "3 stories waiting to be read already" in response.content.decode()
    assert StoryPage.objects.filter(submitted_by=member.user).count() == 3


def test_a_too_short_story_is_refused_with_a_message(community, programme):
    client = signed_in(member_in(programme["silver"]))

    response = client.post("/club/share/", {"title": "Hi", "text": "short"})

    assert response.status_code == 200
    assert "Please write at least 20 characters." in response.content.decode()


def test_visitors_are_asked_to_sign_in_before_sharing(client, community):
    response = client.get("/club/share/")

    assert response.status_code == 302
    assert response["Location"].startswith("/shop/accounts/login/")


# Every audience for every reader -----------------------------------------------------

READERS = ("visitor", "no tier", "regular", "silver", "gold", "diamond")
#: audience -> the readers who may open the page
AUDIENCES = {
    "public": set(READERS),
    "members": {"no tier", "regular", "silver", "gold", "diamond"},
    "silver": {"silver", "gold", "diamond"},
    "gold": {"gold", "diamond"},
    "diamond": {"diamond"},
}


def restrict(page, audience, programme):
    if audience == "public":
        return
    if audience == "members":
        PageViewRestriction.objects.create(
            page=page, restriction_type=PageViewRestriction.LOGIN
        )
        return
    lowest = programme[audience]
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.GROUPS
    )
    restriction.groups.set(
        Group.objects.filter(
            name__in=[t.group_name for t in programme.values() if t.rank >= lowest.rank]
        )
    )


def reader_client(reader, programme):
    if reader == "visitor":
        return Client()
    tier = None if reader == "no tier" else programme[reader]
    return signed_in(member_in(tier))


@pytest.mark.parametrize("audience", list(AUDIENCES))
@pytest.mark.parametrize("reader", READERS)
def test_every_audience_serves_every_reader_as_it_should(
    community, programme, audience, reader
):
    from wagtail_members.models import ArticlePage

    page = community.add_child(
        instance=ArticlePage(
            title="Audience check", slug="audience-check", summary="Secret words."
        )
    )
    restrict(page, audience, programme)
    client = reader_client(reader, programme)

    response = client.get("/members/community/audience-check/")
    listing = html_of(client.get("/members/community/"))
    found = html_of(client.get("/club/search/?q=Audience"))

    if reader in AUDIENCES[audience]:
        assert response.status_code == 200
        assert "Secret words." in response.content.decode()
        assert "Audience check" in listing and "Audience check" in found
        return
    assert "Audience check" not in listing and "Audience check" not in found
    assert "Secret words." not in response.content.decode()
    if reader == "visitor":
        assert response.status_code == 302
        followed = client.get(response["Location"], follow=True)
        assert followed.status_code == 200  # the login form, no loop
        assert 'name="login_submit"' in followed.content.decode()
    else:
        assert response.status_code == 403


# Found in review --------------------------------------------------------------------


def test_a_gated_community_does_not_name_itself_in_the_feed(
    client, community, programme
):
    community.title = "Secret Gold Club"
    community.save_revision().publish()
    gold_only(community, programme)

    xml = client.get("/club/feed/").content.decode()

    assert "Secret Gold Club" not in xml
    assert "<item>" not in xml


@pytest.mark.parametrize("query", ['"', 'tea "oolong', "\x00", "a\x00b"])
def test_odd_search_words_are_answered_not_errors(client, community, query):
    response = client.get("/club/search/", {"q": query})

    assert response.status_code == 200


def test_a_reward_id_past_the_databases_integers_is_a_message(rewards_page, programme):
    client = signed_in(member_in(programme["silver"], points=100))

    response = client.get("/members/rewards/redeem/99999999999999999999999/")

    assert response.status_code == 302
    assert response["Location"] == "/members/rewards/"


def test_rejected_stories_no_longer_wait(community, moderated, programme):
    from wagtail_members.community import submit_story, waiting_count

    member = member_in(programme["silver"])
    for number in range(3):
        story = submit_story(
            member.user, index=community, title=f"Story {number}", text=STORY["text"]
        )
        task_state = story.current_workflow_task_state
        task_state.task.specific.on_action(task_state.specific, moderated, "reject")

    assert waiting_count(member.user) == 0
    response = signed_in(member).post("/club/share/", STORY)
    assert response.status_code == 302


def test_a_copy_or_an_alias_of_a_story_earns_nobody_more(
    community, moderated, programme, story_rule, django_capture_on_commit_callbacks
):
    from oscar_loyalty.models import ActionAward
    from wagtail_members.community import submit_story

    member = member_in(programme["silver"])
    story = submit_story(
        member.user, index=community, title="Cold brew", text=STORY["text"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        story.save_revision().publish()
    with django_capture_on_commit_callbacks(execute=True):
        copy = story.copy(update_attrs={"slug": "cold-brew-copy"}, keep_live=True)
        alias = story.create_alias(update_slug="cold-brew-alias")
        story.save_revision().publish()

    assert copy.specific.submitted_by is None
    assert alias.specific.alias_of_id == story.pk
    assert ActionAward.objects.filter(member=member).count() == 1


def test_the_benefit_catalogue_reads_as_much_for_ten_benefits_as_for_two(
    client, benefits, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/members/benefits/")
    for number in range(8):
        benefits.add_child(
            instance=BenefitPage(title=f"Perk {number}", slug=f"perk-{number}")
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = html_of(client.get("/members/benefits/"))
    assert "Perk 7" in html


def test_a_chinese_reader_gets_the_chinese_tree_at_the_same_address(client, community):
    from wagtail.models import Locale

    chinese, _ = Locale.objects.get_or_create(language_code="zh-hans")
    home = community.get_parent().get_parent()
    home.copy_for_translation(chinese).save_revision().publish()
    members = community.get_parent().specific.copy_for_translation(chinese).specific
    members.title = "会员俱乐部"
    members.save_revision().publish()
    index = community.copy_for_translation(chinese).specific
    index.title = "社区"
    index.save_revision().publish()

    english = html_of(client.get("/"))
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    chinese_home = html_of(client.get("/"))
    chinese_members = html_of(client.get("/members/"))

    assert ">Members' Club</a>" in english
    assert 'href="/members/">会员俱乐部</a>' in chinese_home
    assert 'href="/members/community/">社区</a>' in chinese_home
    assert "<h1>会员俱乐部</h1>" in chinese_members.replace("\n", "").replace("  ", "")


def test_tier_display_data_is_translated_like_pages(client, benefits, programme):
    from wagtail.models import Locale

    english = TierDisplay.objects.create(tier_code="gold", display_name="Golden Leaf")
    chinese, _ = Locale.objects.get_or_create(language_code="zh-hans")
    translated = english.copy_for_translation(chinese)
    translated.display_name = "金叶会员"
    translated.save()

    assert "Golden Leaf" in html_of(client.get("/members/benefits/"))
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    html = html_of(client.get("/members/benefits/"))
    assert "金叶会员" in html and "Golden Leaf" not in html


def test_the_stories_one_member_may_have_waiting_is_a_setting(
    community, moderated, programme, settings
):
    settings.WAGTAIL_MEMBERS_MAX_WAITING_STORIES = 1
    client = signed_in(member_in(programme["silver"]))
    client.post("/club/share/", STORY)

    response = client.post("/club/share/", {**STORY, "title": "Another"})

    assert response.status_code == 200
    assert "1 story waiting to be read already" in response.content.decode()
