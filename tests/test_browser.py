"""A shopper and an editor in a real browser: Debian's chromium driven by Playwright
against pytest-django's live server."""

import os
import re

import pytest
from django.urls import reverse
from oscar.core.loading import get_model

from tests.browser import editors_group, home_page, launch_chromium
from tests.checkout import SHIPPING_ADDRESS
from tests.factories import PASSWORD, CountryFactory, ProductFactory, UserFactory

Order = get_model("order", "Order")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 15_000


def open_dashboard(page, url, staff):
    """Open a dashboard page, signing in on Oscar's dashboard login form."""
    page.goto(url)
    page.fill("#id_username", staff.email)
    page.fill("#id_password", PASSWORD)
    page.locator("#dashboard_login_form input[type=submit]").click()


def sign_in(page, shopper):
    """Through Oscar's login form; Oscar sends shoppers to the home page at /."""
    from playwright.sync_api import expect

    page.goto(reverse("customer:login"))
    page.fill("#id_login-username", shopper.email)
    page.fill("#id_login-password", PASSWORD)
    page.click("button[name=login_submit]")
    expect(page).to_have_url(re.compile(r"/$"))


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop running in this thread, and Django
    # refuses ORM calls from a thread with a running loop unless told otherwise.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url,
        locale="en-GB",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def test_a_shopper_signs_in_and_buys_a_product(page, tmp_path):
    from playwright.sync_api import expect

    CountryFactory()
    home_page(title="Lotus & Co.")
    product = ProductFactory(title="Longjing green tea")
    shopper = UserFactory()

    page.goto(reverse("customer:login"))
    page.fill("#id_login-username", shopper.email)
    page.fill("#id_login-password", PASSWORD)
    page.click("button[name=login_submit]")
    # Oscar sends shoppers to LOGIN_REDIRECT_URL: the Wagtail home page at /.
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("h1")).to_have_text("Lotus & Co.")

    page.goto(product.get_absolute_url())
    expect(page.locator("h1")).to_have_text("Longjing green tea")
    page.click("#add_to_basket_form button[type=submit]")
    expect(page.locator(".alert-success").first).to_contain_text("Longjing green tea")

    page.goto(reverse("basket:summary"))
    page.get_by_role("link", name="Proceed to checkout").click()
    expect(page).to_have_url(re.compile(reverse("checkout:shipping-address")))
    form = page.locator("#new_shipping_address")
    for field in ("first_name", "last_name", "line1", "line4", "postcode"):
        form.locator(f"#id_{field}").fill(SHIPPING_ADDRESS[field])
    # Oscar drops the country field when there is only one shipping country.
    if form.locator("#id_country").count():
        form.locator("#id_country").select_option(SHIPPING_ADDRESS["country"])
    form.locator("#id_phone_number").fill(SHIPPING_ADDRESS["phone_number"])
    form.get_by_role("button", name="Continue").click()

    # One shipping method and no payment gateway: Oscar skips to payment details.
    expect(page).to_have_url(re.compile(reverse("checkout:payment-details")))
    page.click("#view_preview")
    expect(page).to_have_url(re.compile(reverse("checkout:preview")))
    expect(page.locator("body")).to_contain_text("Longjing green tea")
    expect(page.locator("body")).to_contain_text("88 Nanjing West Road")
    page.click("#place-order")

    expect(page).to_have_url(re.compile(reverse("checkout:thank-you")))
    order = Order.objects.get(user=shopper)
    expect(page.locator("p.lead strong")).to_have_text(order.number)
    page.screenshot(path=tmp_path / "thank-you.png", full_page=True)
    assert order.lines.get().product == product
    assert order.shipping_address.country_id == "CN"
    assert Order.objects.count() == 1


def test_an_editor_signs_into_the_wagtail_admin_and_opens_the_explorer(page):
    from playwright.sync_api import expect

    home_page(title="Lotus & Co.")
    editor = UserFactory(username="editor")
    editor.groups.add(editors_group())

    page.goto(reverse("wagtailadmin_login"))
    page.fill("#id_username", editor.username)
    page.fill("#id_password", PASSWORD)
    page.locator("form button[type=submit]").click()

    expect(page).to_have_url(re.compile(reverse("wagtailadmin_home") + "$"))
    expect(page).to_have_title(re.compile("Dashboard"))
    expect(page.get_by_role("button", name="Pages")).to_be_visible()

    page.goto(reverse("wagtailadmin_explore_root"))
    expect(page.get_by_role("link", name="Lotus & Co.").first).to_be_visible()


def test_a_shopper_pays_part_of_an_order_with_points_and_sees_it_in_the_history(
    page, tmp_path
):
    from playwright.sync_api import expect

    from oscar_loyalty.models import Member
    from oscar_loyalty.redemption import ensure_points_offer
    from oscar_loyalty.services import ledger
    from oscar_loyalty.services.members import get_or_create_member

    ensure_points_offer()  # a flush by an earlier transactional test removes it
    CountryFactory()
    home_page(title="Lotus & Co.")
    product = ProductFactory(title="Da Hong Pao", stockrecord__price=100)
    shopper = UserFactory()
    member = get_or_create_member(shopper)
    ledger.adjust(
        member=member,
        points=8000,
        reason="Welcome gift",
        actor=ledger.Actor(id=None, name="staff"),
    )

    sign_in(page, shopper)
    page.goto(product.get_absolute_url())
    page.click("#add_to_basket_form button[type=submit]")

    page.goto(reverse("basket:summary"))
    panel = page.locator("#loyalty-points")
    expect(panel).to_contain_text("8000 points")
    panel.locator("#loyalty-points-input").fill("3000")
    panel.locator("#loyalty-apply-points").click()
    expect(page.locator(".alert-success").first).to_contain_text("3000 points applied")
    expect(page.locator("#basket_totals")).to_contain_text("Points")
    expect(page.locator("#basket_totals")).to_contain_text("70.00")
    page.screenshot(path=tmp_path / "basket-with-points.png", full_page=True)

    page.get_by_role("link", name="Proceed to checkout").click()
    form = page.locator("#new_shipping_address")
    for field in ("first_name", "last_name", "line1", "line4", "postcode"):
        form.locator(f"#id_{field}").fill(SHIPPING_ADDRESS[field])
    if form.locator("#id_country").count():
        form.locator("#id_country").select_option(SHIPPING_ADDRESS["country"])
    form.locator("#id_phone_number").fill(SHIPPING_ADDRESS["phone_number"])
    form.get_by_role("button", name="Continue").click()
    page.click("#view_preview")
    expect(page.locator("#loyalty-points")).to_contain_text("3000 points")
    page.click("#place-order")

    expect(page).to_have_url(re.compile(reverse("checkout:thank-you")))
    order = Order.objects.get(user=shopper)
    assert order.total_incl_tax == 70
    page.goto(reverse("customer:summary"))
    page.click("#loyalty-account-tab")
    expect(page.locator("#loyalty-spendable")).to_have_text("5000")
    expect(page.locator("#loyalty-pending")).to_have_text("70")
    history = page.locator("#loyalty-history")
    expect(history).to_contain_text(order.number)
    expect(history).to_contain_text("-3000")
    expect(history).to_contain_text("Welcome gift")
    page.screenshot(path=tmp_path / "loyalty-tab.png", full_page=True)
    assert Member.objects.get(pk=member.pk).available == 5000


def test_staff_find_a_member_and_add_points_with_a_reason(page):
    from django.contrib.auth.models import Permission
    from playwright.sync_api import expect

    from oscar_loyalty.models import Member, Posting
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    shopper = UserFactory(first_name="Wei", last_name="Zhang")
    member = get_or_create_member(shopper)
    staff = UserFactory(username="desk", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=["view_member", "adjust_points"],
        )
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-member-list"), staff)
    expect(page.locator("#loyalty-members")).to_be_visible()

    page.fill("#id_q", "wei zhang")
    page.locator("#loyalty-member-search button[type=submit]").click()
    page.get_by_role("link", name=member.number).click()
    expect(page.locator("#loyalty-available")).to_have_text("0")

    form = page.locator("#loyalty-adjustment")
    form.locator("#id_points").fill("250")
    form.locator("#id_reason").fill("Parcel arrived damaged")
    form.locator("button[type=submit]").click()

    expect(page.locator(".alert-success").first).to_contain_text("250")
    expect(page.locator("#loyalty-available")).to_have_text("250")
    expect(page.locator("#loyalty-history")).to_contain_text("Parcel arrived damaged")
    posting = Posting.objects.get(member=member, kind=Posting.Kind.ADJUST)
    assert (posting.actor_id, posting.reason) == (staff.pk, "Parcel arrived damaged")
    assert Member.objects.get(pk=member.pk).available == 250


def test_the_owner_finds_a_staff_adjustment_in_the_audit_log_and_downloads_it(page):
    from django.contrib.auth.models import Permission
    from playwright.sync_api import expect

    from oscar_loyalty.models import ExportRecord
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    member = get_or_create_member(UserFactory(first_name="Li", last_name="Na"))
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=[
                "view_member",
                "adjust_points",
                "view_audit_log",
                "export_data",
            ],
        )
    )
    open_dashboard(
        page,
        reverse("loyalty_dashboard:loyalty-member-detail", args=[member.pk]),
        owner,
    )
    form = page.locator("#loyalty-adjustment")
    form.locator("#id_points").fill("80")
    form.locator("#id_reason").fill("=HYPERLINK(x) goodwill")
    form.locator("button[type=submit]").click()
    expect(page.locator(".alert-success").first).to_contain_text("80")

    page.goto(reverse("loyalty_dashboard:loyalty-audit-log"))
    page.fill("#id_q", "goodwill")
    page.locator("#loyalty-audit-search button[type=submit]").click()
    expect(page.locator("#loyalty-audit-entries")).to_contain_text(
        "Adjusted points by +80: =HYPERLINK(x) goodwill"
    )
    with page.expect_download() as download:
        page.locator("#loyalty-audit-export").get_by_role("link", name="CSV").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()

    assert "owner,Changed,Member" in text
    assert "Adjusted points by +80: =HYPERLINK(x) goodwill" in text
    record = ExportRecord.objects.get()
    assert (record.user_name, record.kind, record.filters) == (
        "owner",
        "audit_log",
        {"q": "goodwill"},
    )
    page.reload()
    expect(page.locator("#loyalty-recent-exports")).to_contain_text("owner")


def test_the_owner_sets_double_points_and_the_product_page_shows_them(page):
    from django.contrib.auth.models import Permission
    from playwright.sync_api import expect

    from oscar_loyalty.models import EarnRule

    home_page(title="Lotus & Co.")
    product = ProductFactory(title="Tieguanyin", stockrecord__price=60)
    teas = get_model("offer", "Range").objects.create(name="Oolong teas")
    teas.add_product(product)
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=["view_earnrule", "add_earnrule", "change_earnrule"],
        )
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-earnrule-create"), owner)
    form = page.locator("#loyalty-earn-rule-form")
    form.locator("#id_name").fill("Double points on oolong")
    form.locator("#id_range").select_option(label="Oolong teas")
    form.locator("#id_multiplier").fill("2")
    form.locator("button[type=submit]").click()

    expect(page.locator("#loyalty-earn-rules")).to_contain_text(
        "Double points on oolong"
    )
    assert EarnRule.objects.get().version == 1

    page.goto(product.get_absolute_url())
    points = page.locator(".loyalty-product-points")
    expect(points).to_contain_text("120 points")
    expect(points.locator(".loyalty-multiplier")).to_contain_text("×2")


def test_a_gold_member_sees_their_tier_discount_in_the_basket_and_their_tier(
    page, tmp_path
):
    from playwright.sync_api import expect

    from oscar_loyalty.models import Member, Tier
    from oscar_loyalty.redemption import ensure_points_offer
    from oscar_loyalty.services.members import get_or_create_member

    ensure_points_offer()
    CountryFactory()
    home_page(title="Lotus & Co.")
    Tier.objects.create(code="silver", name="Silver", rank=1, threshold=1000)
    gold = Tier.objects.create(
        code="gold",
        name="Gold",
        rank=2,
        threshold=5000,
        discount_percent=8,
        badge="G",
        colour="#c9a227",
    )
    Tier.objects.create(code="diamond", name="Diamond", rank=3, threshold=10000)
    product = ProductFactory(title="Da Hong Pao", stockrecord__price=100)
    shopper = UserFactory()
    member = get_or_create_member(shopper)
    Member.objects.filter(pk=member.pk).update(tier=gold)

    sign_in(page, shopper)
    page.goto(product.get_absolute_url())
    page.click("#add_to_basket_form button[type=submit]")

    page.goto(reverse("basket:summary"))
    totals = page.locator("#basket_totals")
    expect(totals).to_contain_text("Gold member −8%")
    expect(totals).to_contain_text("92.00")
    page.screenshot(path=tmp_path / "basket-gold.png", full_page=True)

    page.goto(reverse("customer:summary"))
    page.click("#loyalty-account-tab")
    expect(page.locator("#loyalty-tier-name")).to_contain_text("Gold")
    expect(page.locator("#loyalty-tier-progress")).to_contain_text("Diamond")
    page.screenshot(path=tmp_path / "loyalty-tab-gold.png", full_page=True)


def test_a_gold_member_applies_their_birthday_coupon_from_the_basket(page, tmp_path):
    from decimal import Decimal

    from playwright.sync_api import expect

    from oscar_loyalty.models import CouponDesign, Member, Tier
    from oscar_loyalty.redemption import ensure_points_offer
    from oscar_loyalty.services import coupons
    from oscar_loyalty.services.members import get_or_create_member

    ensure_points_offer()
    CountryFactory()
    home_page(title="Lotus & Co.")
    gold = Tier.objects.create(
        code="gold",
        name="Gold",
        rank=2,
        threshold=5000,
        discount_percent=8,
        badge="G",
        colour="#c9a227",
    )
    treat = CouponDesign.objects.create(
        name="Birthday treat",
        purpose=CouponDesign.Purpose.BIRTHDAY,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        minimum_spend=Decimal("50"),
    )
    product = ProductFactory(title="Da Hong Pao", stockrecord__price=100)
    shopper = UserFactory()
    member = get_or_create_member(shopper)
    Member.objects.filter(pk=member.pk).update(tier=gold)
    coupon = coupons.issue_coupon(
        member=member, design=treat, key=f"birthday:{treat.pk}:{member.pk}:2025"
    )
    code = coupon.voucher.code

    sign_in(page, shopper)
    page.goto(product.get_absolute_url())
    page.click("#add_to_basket_form button[type=submit]")

    page.goto(reverse("basket:summary"))
    totals = page.locator("#basket_totals")
    expect(totals).to_contain_text("Gold member −8%")
    expect(totals).to_contain_text("92.00")
    offered = page.locator("#loyalty-coupons")
    expect(offered).to_contain_text("Your coupons")
    expect(offered).to_contain_text("Birthday treat")
    expect(offered).to_contain_text("20.00 off orders of")
    page.screenshot(path=tmp_path / "basket-coupons.png", full_page=True)

    offered.get_by_role("button", name="Apply").click()

    expect(page.locator(".alert-info").first).to_contain_text(code)
    expect(totals).to_contain_text("Gold member −8%")
    expect(totals).to_contain_text(code)
    expect(totals).to_contain_text("-CN¥20.00")
    # 100 less 8% for Gold, less the coupon's 20.
    expect(totals.locator("tr", has_text="Order total")).to_contain_text("72.00")
    expect(page.locator("#loyalty-coupons")).to_have_count(0)
    page.screenshot(path=tmp_path / "basket-coupon-applied.png", full_page=True)

    page.goto(reverse("loyalty:account"))
    expect(page.locator("#loyalty-coupons-link")).to_contain_text("1 coupon to use")
    page.click("#loyalty-coupons-tab")
    expect(page.locator("#loyalty-coupons-usable")).to_contain_text(code)
    page.screenshot(path=tmp_path / "my-coupons.png", full_page=True)


def test_a_member_redeems_a_reward_for_points_and_finds_the_coupon(page, tmp_path):
    from decimal import Decimal

    from playwright.sync_api import expect

    from oscar_loyalty.models import CouponDesign, Member, MemberCoupon, Reward
    from oscar_loyalty.services import ledger
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    design = CouponDesign.objects.create(
        name="¥20 off",
        purpose=CouponDesign.Purpose.REWARD,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
    )
    reward = Reward.objects.create(
        name="¥20 voucher", design=design, points_price=2000, stock=10
    )
    Reward.objects.create(name="Tea set", design=design, points_price=5000)
    shopper = UserFactory()
    member = get_or_create_member(shopper)
    ledger.adjust(
        member=member,
        points=3000,
        reason="Welcome gift",
        actor=ledger.Actor(id=None, name="staff"),
    )

    sign_in(page, shopper)

    page.goto(reverse("customer:summary"))
    page.click("#loyalty-rewards-tab")
    expect(page.locator("#loyalty-rewards-balance")).to_contain_text("3,000 points")
    card = page.locator(f"#loyalty-reward-{reward.pk}")
    expect(card).to_contain_text("2,000 points")
    expect(card).to_contain_text("CN¥20.00 off")
    dear = page.locator(".loyalty-reward", has_text="Tea set")
    expect(dear.get_by_role("button", name="Redeem")).to_be_disabled()
    expect(dear).to_contain_text("You need 2,000 more points.")
    page.screenshot(path=tmp_path / "rewards.png", full_page=True)

    card.get_by_role("link", name="Redeem").click()
    expect(page.locator("#loyalty-redeem-question")).to_have_text(
        "Spend 2,000 points for ¥20 voucher? You will have 1,000 points left."
    )
    page.screenshot(path=tmp_path / "reward-confirm.png", full_page=True)
    page.click("#loyalty-redeem-confirm")

    expect(page).to_have_url(re.compile(reverse("loyalty:coupons") + "$"))
    coupon = MemberCoupon.objects.get(member=member)
    code = coupon.voucher.code
    expect(page.locator(".alert-success").first).to_contain_text(code)
    expect(page.locator("#loyalty-coupons-usable")).to_contain_text(code)
    expect(page.locator("#loyalty-coupons-usable")).to_contain_text("¥20 off")
    page.screenshot(path=tmp_path / "reward-coupon.png", full_page=True)

    page.click("#loyalty-account-tab")
    expect(page.locator("#loyalty-spendable")).to_have_text("1000")
    assert Member.objects.get(pk=member.pk).available == 1000
    assert coupon.points_cost == 2000


def test_the_owner_runs_spend_and_save_and_a_shopper_gets_it_in_the_basket(
    page, tmp_path
):
    from datetime import timedelta

    from django.contrib.auth.models import Permission
    from django.utils import timezone
    from playwright.sync_api import expect

    from oscar_loyalty.models import Campaign
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    product = ProductFactory(title="Longjing", stockrecord__price=120)
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=["view_campaign", "add_campaign", "change_campaign"],
        )
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-campaign-create"), owner)
    form = page.locator("#loyalty-campaign-form")
    form.locator("#id_name").fill("Spend 200, save 30")
    form.locator("#id_kind").select_option("spend_save")
    now = timezone.localtime(timezone.now())
    for field, moment in (
        ("#id_starts_at", now - timedelta(hours=1)),
        ("#id_ends_at", now + timedelta(days=7)),
    ):
        page.eval_on_selector(
            field, "(el, value) => { el.value = value; }", f"{moment:%Y-%m-%d %H:%M:%S}"
        )
    form.locator("#id_steps-0-threshold").fill("200")
    form.locator("#id_steps-0-amount").fill("30")
    form.locator("button[type=submit]").click()

    expect(page.locator("body")).to_contain_text("Spend 200, save 30")
    campaign = Campaign.objects.get()
    assert campaign.offer.condition.value == 200
    page.screenshot(path=tmp_path / "campaign-saved.png", full_page=True)

    shopper = UserFactory()
    get_or_create_member(shopper)
    page.context.clear_cookies()
    sign_in(page, shopper)
    for _ in range(2):
        page.goto(product.get_absolute_url())
        page.click("#add_to_basket_form button[type=submit]")

    page.goto(reverse("basket:summary"))
    totals = page.locator("#basket_totals")
    expect(totals).to_contain_text("Spend 200, save 30")
    expect(totals).to_contain_text("210.00")
    page.screenshot(path=tmp_path / "basket-spend-save.png", full_page=True)


def test_an_editor_publishes_a_gold_only_article_silver_cannot_reach_it_gold_can(
    page, tmp_path
):
    from django.contrib.auth.models import Permission
    from playwright.sync_api import expect
    from wagtail.models import GroupPagePermission

    from oscar_loyalty.models import Member, Tier
    from oscar_loyalty.services import tiers
    from oscar_loyalty.services.members import get_or_create_member
    from wagtail_members.models import CommunityIndexPage, MemberHomePage

    home = home_page(title="Lotus & Co.")
    members = home.add_child(
        instance=MemberHomePage(title="Members' Club", slug="members")
    )
    community = members.add_child(
        instance=CommunityIndexPage(title="Community", slug="community")
    )
    for code, rank, threshold in (("silver", 1, 1000), ("gold", 2, 4000)):
        Tier.objects.create(
            code=code, name=code.title(), rank=rank, threshold=threshold
        )
    editors = editors_group()
    GroupPagePermission.objects.get_or_create(
        group=editors,
        page=community,
        permission=Permission.objects.get(
            content_type__app_label="wagtailcore", codename="publish_page"
        ),
    )
    editor = UserFactory(username="editor")
    editor.groups.add(editors)

    def shopper_in(code):
        user = UserFactory()
        member = get_or_create_member(user)
        Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code=code))
        member.refresh_from_db()
        tiers.sync_member_groups([member])
        return user

    silver, gold = shopper_in("silver"), shopper_in("gold")

    # The editor writes the article, publishes it and makes it private to Gold.
    page.goto(reverse("wagtailadmin_login"))
    page.fill("#id_username", editor.username)
    page.fill("#id_password", PASSWORD)
    page.locator("form button[type=submit]").click()
    page.goto(
        reverse(
            "wagtailadmin_pages:add",
            args=["wagtail_members", "articlepage", community.pk],
        )
    )
    page.fill("#id_title", "Gold harvest notes")
    page.fill("#id_summary", "Our buyers' notes on this year's first flush.")
    page.get_by_role("button", name="More actions").click()
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".messages")).to_contain_text("published")
    from wagtail_members.models import ArticlePage

    article = ArticlePage.objects.get(title="Gold harvest notes")
    page.goto(reverse("wagtailadmin_pages:edit", args=[article.pk]))
    page.get_by_role("button", name="Toggle status").click()
    page.get_by_role("button", name="Change privacy").click()
    page.check("#id_restriction_type_3")  # "accessible to users in specific groups"
    page.get_by_label("loyalty:gold").check()
    page.locator("#set-privacy input[type=submit]").click()
    expect(page.get_by_text("Not visible to the public")).to_be_visible()
    page.screenshot(path=tmp_path / "privacy.png", full_page=True)
    page.context.clear_cookies()

    # Silver: not by URL, not in the community list, not in search.
    sign_in(page, silver)
    response = page.goto(article.url)
    assert response.status == 403
    expect(page.locator("#member-upgrade")).to_contain_text(
        "is for Gold members and above"
    )
    page.goto(community.url)
    expect(page.locator("#member-posts")).not_to_contain_text("Gold harvest notes")
    page.goto(reverse("wagtail_members:search") + "?q=harvest")
    expect(page.locator("#member-search-results")).not_to_contain_text(
        "Gold harvest notes"
    )
    page.context.clear_cookies()

    # Gold: by the list and the search, then the page itself.
    sign_in(page, gold)
    page.goto(reverse("wagtail_members:search") + "?q=harvest")
    page.get_by_role("link", name="Gold harvest notes").click()
    expect(page.locator("h1")).to_have_text("Gold harvest notes")
    expect(page.locator(".member-post")).to_contain_text("For Gold members and above")
    page.goto(community.url)
    expect(page.locator("#member-posts")).to_contain_text("Gold harvest notes")
    page.screenshot(path=tmp_path / "gold-article.png", full_page=True)


def test_a_shopper_signs_up_agreeing_to_e_mails_then_withdraws_on_the_loyalty_tab(
    page,
):
    from playwright.sync_api import expect

    from oscar_loyalty.models import ConsentChange, Member

    home_page(title="Lotus & Co.")
    page.goto(reverse("customer:register"))
    page.fill("#id_email", "new.member@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    expect(page.locator("#loyalty-signup-email")).not_to_be_checked()
    page.check("#loyalty-signup-email")
    page.click("button[name=registration_submit]")
    expect(page).not_to_have_url(re.compile(r"/register/"))

    member = Member.objects.get(user__email="new.member@example.com")
    assert member.consent_email and not member.consent_sms
    page.goto(reverse("loyalty:account"))
    email_box = page.locator("#loyalty-consent-email")
    expect(email_box).to_be_checked()
    expect(page.locator("#loyalty-consent-email-changed")).to_contain_text(
        "Sign-up form"
    )
    email_box.uncheck()
    page.check("#loyalty-consent-profiling")
    page.locator("#loyalty-consent-form button[type=submit]").click()

    expect(page.locator("body")).to_contain_text("Your choices are saved.")
    expect(page.locator("#loyalty-consent-email")).not_to_be_checked()
    expect(page.locator("#loyalty-consent-profiling")).to_be_checked()
    page.locator("#loyalty-consent-history summary").click()
    expect(page.locator("#loyalty-consent-history")).to_contain_text("Withdrawn")
    member.refresh_from_db()
    assert (member.consent_email, member.consent_profiling) == (False, True)
    assert list(
        ConsentChange.objects.filter(member=member)
        .order_by("id")
        .values_list("purpose", "granted", "source")
    ) == [
        ("email", True, "signup"),
        ("email", False, "account"),
        ("profiling", True, "account"),
    ]


def test_the_owner_checks_a_members_file_then_imports_it(page, tmp_path):
    from django.contrib.auth.models import Permission
    from playwright.sync_api import expect

    from oscar_loyalty.models import Member, MemberImport

    home_page(title="Lotus & Co.")
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=["import_members", "view_member"],
        )
    )
    members_file = tmp_path / "old-loyalty-system.csv"
    members_file.write_text(
        "email,first_name,phone,points,email_consent\n"
        "mei@example.com,Mei,+86 138 0013 8001,1200,yes\n"
        "wei@example.com,Wei,,300,no\n",
        encoding="utf-8",
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-import-list"), owner)
    page.set_input_files("#id_file", str(members_file))
    page.locator("#loyalty-import-form button[type=submit]").click()

    expect(page.locator("#loyalty-import-status")).to_contain_text("Checked")
    expect(page.locator("#loyalty-import-preview")).to_contain_text("mei@example.com")
    expect(page.locator("#loyalty-import-check")).to_contain_text("1500 points")
    assert not Member.objects.exists()
    page.locator("#loyalty-import-run button[type=submit]").click()

    expect(page.locator("#loyalty-import-status")).to_contain_text("Imported")
    expect(page.locator("#loyalty-import-result")).to_contain_text("2 (1500 points)")
    assert Member.objects.count() == 2
    assert MemberImport.objects.get().status == MemberImport.Status.IMPORTED
    page.goto(reverse("loyalty_dashboard:loyalty-member-list") + "?q=138%200013")
    expect(page.locator("#loyalty-members")).to_contain_text("mei@example.com")


def test_the_owner_changes_the_earn_rate_and_the_product_page_follows(page):
    from django.contrib.auth.models import Permission
    from playwright.sync_api import expect

    home_page(title="Lotus & Co.")
    product = ProductFactory(title="Tieguanyin", stockrecord__price=60)
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="oscar_loyalty",
            codename="change_programmesetting",
        )
    )
    page.goto(product.get_absolute_url())
    expect(page.locator(".loyalty-product-points")).to_contain_text("60 points")

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-overview"), owner)
    page.click("#loyalty-change-settings")
    page.fill("#id_EARN_RATE", "3")
    page.locator("#loyalty-settings-form button[type=submit]:not([name])").click()
    expect(page.locator(".alert-success")).to_contain_text(
        "Saved: Points per unit of currency."
    )
    expect(page.locator("#setting-EARN_RATE")).to_contain_text(
        "The shop's setting is 1."
    )

    page.goto(product.get_absolute_url())
    expect(page.locator(".loyalty-product-points")).to_contain_text("180 points")

    page.goto(reverse("loyalty_dashboard:loyalty-settings"))
    page.locator('button[name="set_back"][value="EARN_RATE"]').click()
    expect(page.locator(".alert-success")).to_contain_text("is back to the shop's")
    expect(page.locator("#id_EARN_RATE")).to_have_value("1")
    page.goto(product.get_absolute_url())
    expect(page.locator(".loyalty-product-points")).to_contain_text("60 points")


def test_staff_list_the_dormant_members_and_open_one(page):
    from datetime import timedelta

    from django.contrib.auth.models import Permission
    from django.utils import timezone
    from playwright.sync_api import expect

    from oscar_loyalty import consent, scoring
    from oscar_loyalty.models import Member, OrderActivity
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    now = timezone.now()
    members = {}
    for name, days in (("Lan", 5), ("Jun", 300)):
        member = get_or_create_member(
            UserFactory(first_name=name, email=f"{name.lower()}@example.com")
        )
        Member.objects.filter(pk=member.pk).update(joined_at=now - timedelta(days=400))
        consent.record(member, {"profiling": True}, source="account")
        OrderActivity.objects.create(
            member=member,
            order_number=f"SEG-{name}",
            placed_at=now - timedelta(days=days),
            spend=100,
        )
        members[name] = member
    scoring.score_all(now)
    staff = UserFactory(username="desk", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="oscar_loyalty", codename="view_member"
        )
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-member-list"), staff)
    page.select_option("#id_activity", label="Dormant")
    page.locator("#loyalty-member-search button[type=submit]").click()

    table = page.locator("#loyalty-members")
    expect(table).to_contain_text("jun@example.com")
    expect(table).not_to_contain_text("lan@example.com")
    page.get_by_role("link", name=members["Jun"].number).click()
    expect(page.locator("#loyalty-member-segments")).to_contain_text("Dormant")


def test_the_owner_sets_up_win_back_and_sees_who_was_picked(page):
    from datetime import timedelta

    from django.contrib.auth.models import Permission
    from django.utils import timezone
    from playwright.sync_api import expect

    from oscar_loyalty import consent, scoring, winback
    from oscar_loyalty.models import Member, OrderActivity
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    now = timezone.now()
    gone = get_or_create_member(UserFactory(first_name="Hua", email="hua@example.com"))
    Member.objects.filter(pk=gone.pk).update(joined_at=now - timedelta(days=450))
    consent.record(gone, {"profiling": True}, source="account")
    for month in range(12):  # monthly for a year, then nothing for 3 months
        OrderActivity.objects.create(
            member=gone,
            order_number=f"WB-{month}",
            placed_at=now - timedelta(days=90 + 30 * month),
            spend=80,
        )
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=[
                "view_winbackrule",
                "add_winbackrule",
                "change_winbackrule",
                "view_winback",
                "view_member",
            ],
        )
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-winbackrule-list"), owner)
    page.get_by_role("link", name="Create win-back rule").click()
    page.fill("#id_name", "Double points to come back")
    page.fill("#id_threshold", "60")
    page.select_option("#id_action", value="points")
    page.fill("#id_multiplier", "2")
    page.fill("#id_days", "10")
    page.fill("#id_holdout_percent", "0")
    page.locator("#loyalty-winback-rule-form button[type=submit]").click()
    expect(page.locator(".alert-success")).to_contain_text(
        "Win-back rule “Double points to come back” created."
    )

    winback.start(scoring.run(now))  # the nightly run

    page.reload()
    rule = page.locator(".loyalty-winback-rule")
    expect(rule).to_contain_text("Double points to come back")
    expect(rule.locator("td").nth(2)).to_have_text("1")  # picked, got the action
    rule.get_by_role("link", name="Members picked").click()
    expect(page.locator("#loyalty-winbacks")).to_contain_text("hua@example.com")
    expect(page.locator("#loyalty-winbacks")).to_contain_text(
        "Extra points for some days"
    )


def test_the_owner_reads_the_analytics_and_opens_a_segments_members(page):
    from datetime import timedelta

    from django.contrib.auth.models import Permission
    from django.utils import timezone
    from playwright.sync_api import expect

    from oscar_loyalty import consent, scoring
    from oscar_loyalty.models import Member, OrderActivity
    from oscar_loyalty.services.members import get_or_create_member

    home_page(title="Lotus & Co.")
    now = timezone.now()
    for name, days in (("Lan", 5), ("Jun", 300)):
        member = get_or_create_member(
            UserFactory(first_name=name, email=f"{name.lower()}@example.com")
        )
        Member.objects.filter(pk=member.pk).update(joined_at=now - timedelta(days=400))
        consent.record(member, {"profiling": True}, source="account")
        OrderActivity.objects.create(
            member=member,
            order_number=f"AN-{name}",
            placed_at=now - timedelta(days=days),
            spend=100,
        )
    scoring.run(now)
    owner = UserFactory(username="owner", is_staff=True)
    owner.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="oscar_loyalty",
            codename__in=["view_analytics", "view_member"],
        )
    )

    open_dashboard(page, reverse("loyalty_dashboard:loyalty-analytics"), owner)
    expect(page.locator("#loyalty-kpis")).to_contain_text("Member growth rate")
    expect(page.locator("figure.loyalty-chart svg").first).to_be_visible()
    page.screenshot(path="/tmp/analytics.png", full_page=True)
    segments = page.locator("#loyalty-table-segments")
    expect(segments).to_contain_text("Activity: Dormant")
    segments.get_by_role("link", name="Activity: Dormant").click()

    table = page.locator("#loyalty-members")
    expect(table).to_contain_text("jun@example.com")
    expect(table).not_to_contain_text("lan@example.com")
