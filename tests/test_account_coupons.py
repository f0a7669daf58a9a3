"""The shopper's coupons: the "My coupons" page, the birthday on the Loyalty tab and
the "Your coupons" panel of the basket, through Oscar's real basket and checkout."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext
from oscar.core.loading import get_model

from oscar_loyalty.models import CouponDesign, Member, MemberCoupon, Tier
from oscar_loyalty.services import coupons
from oscar_loyalty.services.members import get_or_create_member
from oscar_loyalty.templatetags.loyalty_coupons import basket_coupons
from tests.checkout import add_to_basket, place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

Basket = get_model("basket", "Basket")

pytestmark = pytest.mark.django_db

COUPONS = "loyalty:coupons"
ACCOUNT = "loyalty:account"
BIRTHDAY = "loyalty:birthday"


@pytest.fixture
def product():
    CountryFactory()
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


@pytest.fixture
def treat():
    """¥20 off orders of ¥50 or more, on the member's birthday."""
    return CouponDesign.objects.create(
        name="Birthday treat",
        purpose=CouponDesign.Purpose.BIRTHDAY,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        minimum_spend=Decimal("50"),
        valid_days=30,
    )


@pytest.fixture
def gold():
    return Tier.objects.create(code="gold", name="Gold", rank=2, threshold=5000)


@pytest.fixture
def gold_gift(gold):
    """10% off for Gold members and above."""
    return CouponDesign.objects.create(
        name="Gold gift",
        purpose=CouponDesign.Purpose.TIER,
        benefit_type=CouponDesign.BenefitType.PERCENTAGE,
        value=Decimal("10"),
        tier=gold,
    )


@pytest.fixture
def free_shipping():
    return CouponDesign.objects.create(
        name="Parcel on us",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )


def new_member(**fields):
    member = get_or_create_member(UserFactory())
    if fields:
        Member.objects.filter(pk=member.pk).update(**fields)
        member.refresh_from_db()
    return member


def issue(member, design, *, days_ago=0):
    """A coupon of ``design`` issued ``days_ago`` days ago (so maybe expired)."""
    return coupons.issue_coupon(
        member=member,
        design=design,
        key=f"test:{design.pk}:{member.pk}:{MemberCoupon.objects.count()}",
        now=timezone.now() - timedelta(days=days_ago),
    )


def said(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def oscar(msgid, **params):
    """Oscar's message in the shop's language (its English says "coupon")."""
    with translation.override(settings.LANGUAGE_CODE):
        return gettext(msgid) % params if params else gettext(msgid)


def apply_coupon(client, coupon):
    """Press a coupon's Apply button: Oscar's own voucher view takes the code."""
    client.get(reverse("basket:summary"))  # shows (and so clears) earlier messages
    response = client.post(
        reverse("basket:vouchers-add"),
        {"code": coupon.voucher.code},
        HTTP_REFERER=reverse("basket:summary"),
    )
    assert response.status_code == 302
    return said(response)


def use_coupon(client, coupon, product):
    """An order through Oscar's real checkout with ``coupon`` applied."""
    add_to_basket(client, product)
    assert apply_coupon(client, coupon) == [
        oscar("Voucher '%(code)s' added to basket", code=coupon.voucher.code)
    ]
    return place_order(client, product)


def long_date(moment):
    return date_format(timezone.localtime(moment), "DATE_FORMAT")


# My coupons --------------------------------------------------------------------


def test_the_page_groups_the_members_coupons_and_says_what_each_gives(
    client, product, treat, gold, gold_gift, free_shipping
):
    member = new_member(tier=gold)
    client.force_login(member.user)
    birthday = issue(member, treat)
    gift = issue(member, gold_gift)
    parcel = issue(member, free_shipping, days_ago=10)
    used = issue(member, treat)
    order = use_coupon(client, used, product)
    expired = issue(member, treat, days_ago=40)

    response = client.get(reverse(COUPONS))

    assert response.status_code == 200
    context = response.context
    assert context["active_tab"] == "coupons"
    assert [c.pk for c in context["usable"]] == [parcel.pk, birthday.pk, gift.pk]
    assert [c.pk for c in context["used"]] == [used.pk]
    assert [c.pk for c in context["expired"]] == [expired.pk]
    page = response.content.decode()
    assert 'id="loyalty-coupons-tab"' in page
    assert f">{birthday.voucher.code}</code>" in page
    assert "CN¥20.00 off orders of CN¥50.00 or more" in page
    assert "10% off" in page
    assert "Free shipping" in page
    assert "For Gold members and above" in page
    assert long_date(birthday.voucher.end_datetime) in page
    assert long_date(expired.voucher.end_datetime) in page
    used_rows = page.split('id="loyalty-coupons-used"')[1].split("</table>")[0]
    assert order.number in used_rows
    assert reverse("customer:order", kwargs={"order_number": order.number}) in (
        used_rows
    )
    assert long_date(order.date_placed) in used_rows
    expired_rows = page.split('id="loyalty-coupons-expired"')[1].split("</table>")[0]
    assert expired.voucher.code in expired_rows
    usable_rows = page.split('id="loyalty-coupons-usable"')[1].split("</table>")[0]
    assert used.voucher.code not in usable_rows
    assert expired.voucher.code not in usable_rows


def test_another_members_coupons_are_never_shown(client, treat):
    mine, theirs = new_member(), new_member()
    my_coupon = issue(mine, treat)
    their_coupons = [issue(theirs, treat), issue(theirs, treat, days_ago=40)]
    client.force_login(mine.user)

    response = client.get(reverse(COUPONS), {"member": theirs.pk})

    page = response.content.decode()
    assert my_coupon.voucher.code in page
    for coupon in their_coupons:
        assert coupon.voucher.code not in page
    assert [c.pk for c in response.context["usable"]] == [my_coupon.pk]
    assert response.context["expired"] == []


def test_a_shopper_without_a_member_account_sees_an_empty_page(client, treat):
    issue(new_member(), treat)
    shopper = UserFactory()
    client.force_login(shopper)

    response = client.get(reverse(COUPONS))

    assert response.status_code == 200
    context = response.context
    assert (context["usable"], context["used"], context["expired"]) == ([], [], [])
    assert "You have no coupons to use right now." in response.content.decode()
    assert not Member.objects.filter(user=shopper).exists()


def test_the_page_is_only_for_signed_in_shoppers(client):
    response = client.get(reverse(COUPONS))

    assert response.status_code == 302
    assert reverse("customer:login") in response.url


def test_the_page_runs_as_many_queries_for_twenty_coupons_as_for_two(
    client, product, treat, gold, gold_gift, django_assert_max_num_queries
):
    member = new_member(tier=gold)
    client.force_login(member.user)
    issue(member, gold_gift)
    use_coupon(client, issue(member, treat), product)
    url = reverse(COUPONS)
    client.get(url)  # the session settles on the first request
    with CaptureQueriesContext(connection) as two:
        assert len(client.get(url).context["used"]) == 1
    # Counted now: the requests below clear the connection's query log.
    baseline = len(two)

    for _ in range(5):
        use_coupon(client, issue(member, treat), product)
    for _ in range(6):
        issue(member, gold_gift)
    for _ in range(7):
        issue(member, treat, days_ago=40)
    assert MemberCoupon.objects.filter(member=member).count() == 20
    client.get(url)  # a new basket after the last order, as after the first

    with django_assert_max_num_queries(baseline):
        response = client.get(url)
    context = response.context
    assert [len(context[group]) for group in ("usable", "used", "expired")] == [7, 6, 7]


# The Loyalty tab ---------------------------------------------------------------


def test_the_loyalty_tab_links_to_the_coupons_to_use(client, treat):
    member = new_member()
    issue(member, treat)
    issue(member, treat)
    issue(member, treat, days_ago=40)
    client.force_login(member.user)

    page = client.get(reverse(ACCOUNT)).content.decode()

    link = f'href="{reverse(COUPONS)}"'
    assert f"You have <a {link}>2 coupons</a> to use." in page
    assert 'id="loyalty-coupons-tab"' in page


def test_the_loyalty_tab_says_when_there_is_no_coupon_to_use(client):
    client.force_login(new_member().user)

    page = client.get(reverse(ACCOUNT)).content.decode()

    assert "You have no coupons to use right now." in page


# Birthday ----------------------------------------------------------------------


def test_a_member_sets_their_birthday_and_sees_when_the_coupon_comes(client, treat):
    member = new_member(expiry_reminders=True)
    client.force_login(member.user)
    coming = timezone.localdate() + timedelta(days=10)

    response = client.post(
        reverse(BIRTHDAY), {"month": coming.month, "day": coming.day}
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.birth_month, member.birth_day) == (coming.month, coming.day)
    assert member.expiry_reminders is True  # nothing else was written
    page = client.get(reverse(ACCOUNT)).content.decode()
    day = date_format(date(2000, coming.month, coming.day), "MONTH_DAY_FORMAT")
    assert (
        f"Your birthday: {day} — your next birthday coupon comes on "
        f"{date_format(coming, 'DATE_FORMAT')}." in page
    )
    assert "a birthday coupon comes only once a year" in page


def test_the_coupon_date_allows_for_coupons_issued_days_ahead(client, treat, settings):
    settings.OSCAR_LOYALTY_BIRTHDAY_DAYS_AHEAD = 7
    today = timezone.localdate()
    coming = today + timedelta(days=10)
    member = new_member(birth_month=coming.month, birth_day=coming.day)
    client.force_login(member.user)

    response = client.get(reverse(ACCOUNT))

    assert response.context["birthday"]["next_coupon"] == today + timedelta(days=3)


def test_without_an_active_birthday_design_no_coupon_date_is_promised(client, treat):
    CouponDesign.objects.filter(pk=treat.pk).update(is_active=False)
    member = new_member(birth_month=3, birth_day=14)
    client.force_login(member.user)

    page = client.get(reverse(ACCOUNT)).content.decode()

    day = date_format(date(2000, 3, 14), "MONTH_DAY_FORMAT")
    assert f"Your birthday: {day}" in page
    assert "next birthday coupon" not in page


def test_29_february_is_a_birthday(client):
    member = new_member()
    client.force_login(member.user)

    response = client.post(reverse(BIRTHDAY), {"month": 2, "day": 29})

    member.refresh_from_db()
    assert (member.birth_month, member.birth_day) == (2, 29)
    assert not any("no day" in message for message in said(response))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"month": 2, "day": 30}, "February has no day 30."),
        ({"month": 4, "day": 31}, "April has no day 31."),
        ({"month": 13, "day": 1}, "Choose a month from the list."),
        ({"month": "March", "day": 1}, "Choose a month from the list."),
        ({"month": 3, "day": 0}, "Choose a day from the list."),
        ({"month": 3}, "Choose the day of your birthday."),
        ({"day": 14}, "Choose the month of your birthday."),
    ],
)
def test_a_date_that_does_not_exist_is_refused_and_nothing_is_saved(
    client, data, error
):
    member = new_member(birth_month=3, birth_day=14)
    client.force_login(member.user)

    response = client.post(reverse(BIRTHDAY), data)

    assert response.status_code == 302
    assert said(response) == [error]
    member.refresh_from_db()
    assert (member.birth_month, member.birth_day) == (3, 14)


def test_the_birthday_can_be_changed_and_cleared(client):
    member = new_member(birth_month=3, birth_day=14)
    client.force_login(member.user)

    client.post(reverse(BIRTHDAY), {"month": 11, "day": 2})
    member.refresh_from_db()
    assert (member.birth_month, member.birth_day) == (11, 2)

    client.post(reverse(BIRTHDAY), {"month": 11, "day": 2, "clear": "1"})
    member.refresh_from_db()
    assert (member.birth_month, member.birth_day) == (None, None)


def test_the_birthday_is_set_by_post_for_the_signed_in_shopper_only(client):
    url = reverse(BIRTHDAY)
    response = client.post(url, {"month": 3, "day": 14})
    assert response.status_code == 302
    assert reverse("customer:login") in response.url
    assert not Member.objects.filter(birth_month__isnull=False).exists()

    client.force_login(UserFactory())
    assert client.get(url).status_code == 405


# The basket's "Your coupons" panel ---------------------------------------------


def panel(response):
    page = response.content.decode()
    if 'id="loyalty-coupons"' not in page:
        return None
    return page.split('id="loyalty-coupons"')[1].split('id="loyalty-points"')[0]


def test_the_basket_offers_the_members_coupons_and_applies_one_through_oscar(
    client, product, treat, free_shipping
):
    member = new_member()
    birthday = issue(member, treat)
    parcel = issue(member, free_shipping)
    expired = issue(member, treat, days_ago=40)
    theirs = issue(new_member(), treat)
    client.force_login(member.user)
    add_to_basket(client, product)

    shown = panel(client.get(reverse("basket:summary")))

    assert shown is not None
    assert "Your coupons" in shown
    assert "Birthday treat" in shown
    assert "CN¥20.00 off orders of CN¥50.00 or more" in shown
    assert "Free shipping" in shown
    assert f"Valid until {long_date(birthday.voucher.end_datetime)}" in shown
    assert f'action="{reverse("basket:vouchers-add")}"' in shown
    assert "csrfmiddlewaretoken" in shown
    assert f'name="code" value="{birthday.voucher.code}"' in shown
    assert f'name="code" value="{parcel.voucher.code}"' in shown
    assert expired.voucher.code not in shown
    assert theirs.voucher.code not in shown

    assert apply_coupon(client, birthday) == [
        oscar("Voucher '%(code)s' added to basket", code=birthday.voucher.code)
    ]

    response = client.get(reverse("basket:summary"))
    basket = response.context["basket"]
    assert {
        str(d["voucher"].code): d["discount"] for d in basket.voucher_discounts
    } == {birthday.voucher.code: Decimal("20.00")}
    assert basket.total_incl_tax == Decimal("80.00")
    shown = panel(response)
    assert f'value="{birthday.voucher.code}"' not in shown  # in the basket now
    assert f'value="{parcel.voucher.code}"' in shown


def test_a_tier_coupon_is_offered_only_to_a_member_in_the_tier(
    client, product, gold, gold_gift
):
    silver = Tier.objects.create(code="silver", name="Silver", rank=1)
    member = new_member(tier=gold)
    gift = issue(member, gold_gift)
    client.force_login(member.user)
    add_to_basket(client, product)
    assert gift.voucher.code in panel(client.get(reverse("basket:summary")))

    Member.objects.filter(pk=member.pk).update(tier=silver)

    assert panel(client.get(reverse("basket:summary"))) is None


def test_a_member_without_coupons_and_a_guest_see_no_panel(client, product, treat):
    issue(new_member(), treat)
    add_to_basket(client, product)
    response = client.get(reverse("basket:summary"))
    assert response.status_code == 200
    assert panel(response) is None
    assert "Your coupons" not in response.content.decode()

    client.force_login(new_member().user)
    add_to_basket(client, product)
    assert panel(client.get(reverse("basket:summary"))) is None


def test_the_panel_reads_the_coupons_with_one_query(
    client, product, treat, django_assert_num_queries
):
    member = new_member()
    for _ in range(5):
        issue(member, treat)
    basket = Basket.objects.create(owner=member.user)
    basket.vouchers.add(MemberCoupon.objects.first().voucher)

    with django_assert_num_queries(1):
        offered = list(basket_coupons(member, basket))

    assert len(offered) == 4
    for coupon in offered:  # what the panel shows is already loaded
        assert coupon.design.name and coupon.voucher.code


def test_the_basket_page_runs_as_many_queries_for_ten_coupons_as_for_one(
    client, product, treat, django_assert_max_num_queries
):
    member = new_member()
    issue(member, treat)
    client.force_login(member.user)
    add_to_basket(client, product)
    url = reverse("basket:summary")
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert panel(client.get(url)) is not None
    baseline = len(one)

    for _ in range(9):
        issue(member, treat)

    with django_assert_max_num_queries(baseline):
        response = client.get(url)
    assert panel(response).count('name="code"') == 10
