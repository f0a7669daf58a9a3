"""``manage.py load_demo_data``: what the demo holds, and that a re-run adds nothing."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django.utils.html import escape
from oscar.core.loading import get_model
from wagtail.models import Page, Site

from example_shop.demo import DEMO_USERS, SHOPPERS
from example_shop.models import HomePage
from wagtail_members.models import MemberHomePage

pytestmark = pytest.mark.django_db

Category = get_model("catalogue", "Category")
Country = get_model("address", "Country")
Line = get_model("order", "Line")
Order = get_model("order", "Order")
Product = get_model("catalogue", "Product")
ProductImage = get_model("catalogue", "ProductImage")
StockRecord = get_model("partner", "StockRecord")
UserAddress = get_model("address", "UserAddress")

PIPELINE_STATUSES = {
    "Pending",
    "Being processed",
    "Shipped",
    "Complete",
    "Cancelled",
    "Refunded",
}


def load(**options):
    out = StringIO()
    call_command("load_demo_data", stdout=out, **options)
    return out.getvalue()


def snapshot():
    """Row counts of everything the demo creates."""
    models = (
        Category,
        Product,
        ProductImage,
        StockRecord,
        get_user_model(),
        UserAddress,
        Order,
        Line,
        Page,
        Site,
    )
    return {model.__name__: model.objects.count() for model in models}


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo, loaded once for the tests of this module (a load takes ~15 s).

    It is loaded in a transaction that is rolled back after the module's last
    test; each test runs in a savepoint inside it, so what one test changes is
    rolled back before the next, as with a load of its own.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        load(quiet=True)
        yield
        transaction.set_rollback(True)


def test_a_second_run_reuses_everything_and_creates_nothing():
    # Needs an empty database: it does not use ``demo`` and comes first in the
    # module, so it runs before the shared load.
    first = load()
    after_first = snapshot()

    second = load()

    assert snapshot() == after_first
    assert "0 created, 0 updated" in second
    assert "Nothing new" in second
    assert "30 created" in first  # products, stock records and images
    for user in DEMO_USERS:
        assert user.email in first and user.email in second


def test_the_catalogue_has_thirty_priced_stocked_pictured_products_in_five_categories(
    demo,
):

    products = Product.objects.filter(upc__startswith="LC-")
    assert products.count() == 30
    assert Category.objects.filter(depth=1).count() == 5
    for category in Category.objects.all():
        assert category.product_set.count() == 6, category
    records = StockRecord.objects.filter(product__in=products)
    assert records.count() == 30
    assert set(records.values_list("price_currency", flat=True)) == {"CNY"}
    prices = list(records.values_list("price", flat=True))
    assert min(prices) >= 38 and max(prices) <= 1280
    assert all(record.net_stock_level > 0 for record in records)
    assert all(product.description for product in products)
    assert ProductImage.objects.filter(product__in=products).count() == 30
    assert Country.objects.get(iso_3166_1_a2="CN").is_shipping_country


def test_shoppers_have_order_histories_spread_over_more_than_a_year(demo):
    now = timezone.now()

    User = get_user_model()
    shoppers = User.objects.filter(username__in=[s.username for s in SHOPPERS])
    assert shoppers.count() == 5
    counts = {}
    for shopper in shoppers:
        assert shopper.check_password("shopper")
        assert shopper.addresses.get().country_id == "CN"
        counts[shopper.username] = shopper.orders.count()
    assert counts["mei"] >= 12  # the frequent buyer
    assert counts["chen"] == 1  # the new one
    lapsed_last = Order.objects.filter(user__username="li").latest("date_placed")
    assert lapsed_last.date_placed < now - timedelta(days=300)

    dates = list(Order.objects.values_list("date_placed", flat=True))
    assert max(dates) <= now
    assert max(dates) - min(dates) > timedelta(days=365)
    assert min(dates) > now - timedelta(days=18 * 31)
    statuses = set(Order.objects.values_list("status", flat=True))
    assert statuses <= PIPELINE_STATUSES
    assert {"Complete", "Cancelled", "Refunded", "Pending"} <= statuses
    old = Order.objects.filter(date_placed__lt=now - timedelta(days=30))
    assert set(old.values_list("status", flat=True)) <= {
        "Complete",
        "Cancelled",
        "Refunded",
    }
    assert all(1 <= order.lines.count() <= 4 for order in Order.objects.all())
    assert all(order.currency == "CNY" for order in Order.objects.all())


def test_staff_logins_can_reach_their_admin(demo):
    User = get_user_model()

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("admin")
    editor = User.objects.get(email="editor@example.com")
    assert editor.check_password("editor")
    assert not editor.is_superuser
    assert editor.groups.filter(name="Editors").exists()
    assert editor.has_perm("wagtailadmin.access_admin")
    # The owner finds the staff gifts in the audit log.
    client = Client()
    client.force_login(admin)
    audit = html_of(client.get("/shop/dashboard/loyalty/audit/"))
    assert "Adjusted points by +300: Welcome to the Members' Club" in audit
    # ... and the expiry reminders they changed on the settings page.
    assert (
        "Changed Expiry reminders (days before) (OSCAR_LOYALTY_REMINDER_DAYS): "
        "30, 15, 7 → 30, 7" in audit
    )
    from oscar_loyalty.models import Member

    mei = Member.objects.get(user__username="mei")
    page = html_of(client.get(f"/shop/dashboard/loyalty/members/{mei.pk}/"))
    assert (
        "Prefers oolong samples with her orders"
        in page.split("loyalty-member-notes")[1]
    )


def test_the_site_serves_the_home_page_the_members_page_and_the_shop(demo, client):

    site = Site.objects.get(is_default_site=True)
    assert isinstance(site.root_page.specific, HomePage)
    assert site.root_page.title == "Lotus & Co."
    assert not Page.objects.filter(title="Welcome to your new Wagtail site!").exists()
    members = MemberHomePage.objects.get(locale__language_code="en")
    assert members.get_parent().pk == site.root_page.pk
    assert members.live and members.latest_revision is not None

    home = client.get("/")
    assert home.status_code == 200
    assert "Lotus &amp; Co." in home.content.decode()
    response = client.get("/members/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Members&#x27; Club" in body or "Members' Club" in body
    assert "/shop/accounts/login/" in body
    shop = client.get("/shop/", follow=True)
    assert shop.status_code == 200
    product = Product.objects.get(upc="LC-GT-01")
    detail = client.get(product.get_absolute_url())
    assert detail.status_code == 200
    assert "West Lake Longjing" in detail.content.decode()


def test_the_catalogue_page_lists_the_demo_products(demo, client):

    content = client.get("/shop/catalogue/").content.decode()

    assert any(escape(product.title) in content for product in Product.objects.all())


def test_the_demo_shows_points_paid_at_checkout_given_back_and_consent(demo):
    from oscar_loyalty import consent
    from oscar_loyalty.audit import find_drift
    from oscar_loyalty.models import (
        ConsentChange,
        EarnRule,
        Member,
        MemberScore,
        Posting,
        ScoringRun,
    )

    redeemed = Posting.objects.filter(
        kind=Posting.Kind.REDEEM, order_number__startswith="DEMO-MEI-"
    )
    assert set(redeemed.values_list("order_number", flat=True)) == {
        "DEMO-MEI-009",
        "DEMO-MEI-012",
        "DEMO-MEI-015",
    }
    paid = Order.objects.get(number="DEMO-MEI-012")
    messages = [discount.message for discount in paid.discounts.all()]
    assert "1000 points redeemed" in messages
    assert Posting.objects.filter(
        kind=Posting.Kind.RESTORE, order_number="DEMO-MEI-009"
    ).exists()
    # The owner's own rule (a campaign's rule comes with the campaign).
    assert EarnRule.objects.filter(is_active=True, campaign__isnull=True).count() == 1

    def agreed(purpose):
        members = consent.consenting(purpose)
        return set(members.values_list("user__username", flat=True))

    assert agreed("reminders") == {"mei", "wei", "li"}
    assert agreed("email") == {"mei", "wei"}
    assert agreed("sms") == {"wei"}
    assert agreed("profiling") == {"mei"}
    assert set(
        ConsentChange.objects.filter(source="signup").values_list(
            "member__user__username", flat=True
        )
    ) == {"mei", "wei"}
    assert Member.objects.get(user__username="mei").language == "zh-hans"
    # Segments only for the shopper who agreed to profiling (Mei).
    assert set(
        MemberScore.objects.values_list("member__user__username", flat=True)
    ) == {"mei"}
    assert ScoringRun.objects.exists()
    assert find_drift() == []
    # An old gift expired (Wei), another expires within the reminder window (Mei).
    assert Posting.objects.filter(
        kind=Posting.Kind.EXPIRE, member__user__username="wei"
    ).exists()
    from oscar_loyalty.models import Lot

    soon = Lot.objects.filter(
        member__user__username="mei",
        status=Lot.Status.ACTIVE,
        expires_at__lte=timezone.now() + timedelta(days=30),
    )
    assert list(soon.values_list("remaining", flat=True)) == [300]


def test_the_demo_orders_place_shoppers_in_tiers_and_their_groups(demo):
    from oscar_loyalty.models import Member, Tier, TierChange

    assert list(Tier.objects.values_list("name", flat=True)) == [
        "Regular",
        "Silver",
        "Gold",
        "Diamond",
    ]
    tiers = dict(Member.objects.values_list("user__username", "tier__code"))
    assert tiers["mei"] == "gold"
    assert tiers["wei"] == "silver"
    assert tiers["li"] == "regular"
    mei = get_user_model().objects.get(username="mei")
    assert set(
        mei.groups.filter(name__startswith="loyalty:").values_list("name", flat=True)
    ) == {"loyalty:regular", "loyalty:silver", "loyalty:gold"}
    # Mei went up twice as her orders were confirmed, never by hand.
    kinds = TierChange.objects.filter(member__user=mei).values_list("kind", flat=True)
    assert list(kinds) == [TierChange.Kind.UPGRADE, TierChange.Kind.UPGRADE]


def test_the_demo_has_coupons_rewards_campaigns_and_action_rewards(demo, client):
    from oscar_loyalty.audit import find_drift
    from oscar_loyalty.models import (
        ActionRule,
        Campaign,
        CouponDesign,
        MemberCoupon,
        Reward,
    )

    assert CouponDesign.objects.count() == 7
    assert list(Reward.objects.values_list("points_price", flat=True)) == [
        2000,
        500,
        3000,
    ]
    running = Campaign.objects.filter(
        starts_at__lte=timezone.now(), ends_at__gt=timezone.now()
    )
    assert running.count() == 2
    assert all(campaign.offer_id for campaign in Campaign.objects.all())
    assert ActionRule.objects.count() == 8
    held = dict(
        MemberCoupon.objects.values_list("member__user__username", "design__name")
    )
    assert held == {
        "mei": "Birthday treat",
        "wei": "Welcome gift",
        "li": "We miss you",
    }
    assert find_drift() == []
    # Mei, in Gold, sees the members' day in her basket.
    mei = get_user_model().objects.get(username="mei")
    client.force_login(mei)
    product = Product.objects.filter(title__startswith="Biluochun").get()
    client.post(f"/shop/basket/add/{product.pk}/", {"quantity": 2})
    page = client.get("/shop/basket/").content.decode()
    assert "Members&#x27; Day" in page or "Members' Day" in page
    assert "Gold member" in page


def test_the_demo_publishes_the_benefit_and_reward_catalogues_with_a_gold_page(
    demo,
    client,
):
    from wagtail.models import PageViewRestriction

    from wagtail_members.models import BenefitPage, RewardCataloguePage

    benefits = html_of(client.get("/members/benefits/"))
    assert 'id="member-comparison"' in benefits
    assert "Birthday treat" in benefits and "Free shipping" in benefits
    assert "Spring tasting evenings" not in benefits  # Gold and above only
    tasting = BenefitPage.objects.get(slug="spring-tasting", locale__language_code="en")
    restriction = PageViewRestriction.objects.get(page=tasting)
    assert set(restriction.groups.values_list("name", flat=True)) == {
        "loyalty:gold",
        "loyalty:diamond",
    }
    rewards = RewardCataloguePage.objects.get(locale__language_code="en")
    assert rewards.live and rewards.get_parent().specific_class is MemberHomePage
    assert "2,000 points" in html_of(client.get("/members/rewards/"))
    # Mei (Gold) reads the tasting page; Wei (Silver) is told how to get there.
    users = get_user_model().objects
    client.force_login(users.get(username="mei"))
    assert client.get("/members/benefits/spring-tasting/").status_code == 200
    assert "Spring tasting evenings" in html_of(client.get("/members/benefits/"))
    client.force_login(users.get(username="wei"))
    refused = client.get("/members/benefits/spring-tasting/")
    assert refused.status_code == 403
    assert "For Gold members and above" in refused.content.decode()
    # The community: Wei (Silver) sees the member posts, not the Gold evening.
    community = html_of(client.get("/members/community/"))
    assert "Members' day: the spring harvest" in community
    assert "My first gaiwan" in community
    assert "Gold evening" not in community
    client.logout()
    public = html_of(client.get("/members/community/"))
    assert "Brewing oolong gongfu style" in public
    assert "Members' day" not in public and "Gold evening" not in public


def test_the_demo_editor_may_translate_pages(demo):

    editor = get_user_model().objects.get(username="editor")
    assert editor.has_perm("simple_translation.submit_translation")


def test_the_demo_tree_is_in_chinese_too_at_the_same_addresses(demo, client):
    from wagtail.models import Page, PageViewRestriction

    client.post("/i18n/setlang/", {"language": "zh-hans"})
    members = html_of(client.get("/members/"))
    assert "会员俱乐部" in members
    community = html_of(client.get("/members/community/"))
    assert "Brewing oolong" not in community  # the Chinese tree's posts
    english = Page.objects.filter(locale__language_code="en").count()
    chinese = Page.objects.filter(locale__language_code="zh-hans")
    assert chinese.count() == english - 1  # every page but Wagtail's root
    gated = chinese.get(slug="gold-tasting-wuyi")
    assert PageViewRestriction.objects.filter(page=gated).exists()
    mei = get_user_model().objects.get(username="wei")  # Silver
    client.force_login(mei)
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    refused = client.get("/members/community/gold-tasting-wuyi/")
    assert refused.status_code == 403
    assert "金卡" in refused.content.decode() or "Gold" in refused.content.decode()


def html_of(response):
    assert response.status_code == 200, response
    return response.content.decode().replace("&#x27;", "'")


def test_the_gold_evening_shows_a_picture_only_gold_members_can_fetch(demo, client):
    import re

    from django.conf import settings
    from wagtail.images import get_image_model

    users = get_user_model().objects
    client.force_login(users.get(username="mei"))  # Gold
    html = html_of(client.get("/members/community/gold-tasting-wuyi/"))
    assert "Five cups of Wuyi rock tea on the tasting table" in html
    src = re.search(r'<img[^>]*class="figure-img[^>]*>', html)[0]
    src = src.split('src="')[1].split('"')[0]
    assert src.startswith("/club/media/images/gated--wuyi-rock-tea-tasting")
    picture = client.get(src)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"
    image = get_image_model().objects.get(title="Wuyi rock tea tasting")
    assert image.collection.name == "Gold and Diamond members"
    assert image.file.path.startswith(str(settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT))
    client.force_login(users.get(username="wei"))  # Silver
    assert client.get(src).status_code == 403
    client.logout()
    assert client.get(src).status_code == 302
    # The Chinese page shows the same picture with Chinese words.
    client.force_login(users.get(username="mei"))
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    chinese = html_of(client.get("/members/community/gold-tasting-wuyi/"))
    assert "品鉴桌上的五杯武夷岩茶" in chinese
    assert "/club/media/images/gated--" in chinese
