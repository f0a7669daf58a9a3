"""Member coupons: Oscar vouchers bound to one member, through Oscar's real basket
voucher form and checkout."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from oscar.core.loading import get_model

from oscar_loyalty.coupons import coupon_usable_in, record_attempt
from oscar_loyalty.exceptions import CouponReasonRequired
from oscar_loyalty.models import (
    AttemptCounter,
    CouponDesign,
    Member,
    MemberCoupon,
    MemberCouponCondition,
    Tier,
)
from oscar_loyalty.services import coupons
from oscar_loyalty.services.ledger import Actor
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import SHIPPING_ADDRESS, add_to_basket
from tests.factories import CountryFactory, ProductFactory, UserFactory

ConditionalOffer = get_model("offer", "ConditionalOffer")
Voucher = get_model("voucher", "Voucher")
Basket = get_model("basket", "Basket")


@pytest.fixture
def product(db):
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


@pytest.fixture
def design(db):
    return CouponDesign.objects.create(
        name="Birthday treat",
        purpose=CouponDesign.Purpose.BIRTHDAY,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        minimum_spend=Decimal("50"),
        valid_days=30,
    )


def new_member(**fields):
    member = get_or_create_member(UserFactory())
    if fields:
        Member.objects.filter(pk=member.pk).update(**fields)
        member.refresh_from_db()
    return member


def enter_code(client, code):
    client.get(reverse("basket:summary"))  # shows (and so clears) earlier messages
    response = client.post(reverse("basket:vouchers-add"), {"code": code})
    assert response.status_code == 302
    return [str(m) for m in get_messages(response.wsgi_request)]


def oscar(msgid, **params):
    """Oscar's message in the shop's language (its English says "coupon")."""
    with translation.override(settings.LANGUAGE_CODE):
        return gettext(msgid) % params if params else gettext(msgid)


def unknown(code):
    return oscar("No voucher found with code '%(code)s'", code=code)


def basket_discounts(client):
    response = client.get(reverse("basket:summary"))
    assert response.status_code == 200
    basket = response.context["basket"]
    return {
        str(d["name"]): d["discount"]
        for d in [*basket.offer_discounts, *basket.voucher_discounts]
    }


def test_a_design_gets_one_voucher_offer_kept_in_step(design):
    offer = design.offer
    assert offer.offer_type == ConditionalOffer.VOUCHER
    assert offer.name == "Member coupon: Birthday treat"
    assert isinstance(offer.condition.proxy(), MemberCouponCondition)
    assert offer.condition.value == Decimal("50")
    assert (offer.benefit.type, offer.benefit.value) == ("Absolute", Decimal("20"))

    design.value = Decimal("25")
    design.minimum_spend = Decimal("0")
    design.save()
    offer.refresh_from_db()
    assert offer.benefit.value == Decimal("25")
    assert offer.condition.value == Decimal("0")
    assert (
        ConditionalOffer.objects.filter(name__startswith="Member coupon").count() == 1
    )


def test_codes_are_long_unambiguous_and_unique(design):
    member = new_member()
    codes = {
        coupons.issue_coupon(member=member, design=design, key=f"k{i}").voucher.code
        for i in range(50)
    }
    assert len(codes) == 50
    for code in codes:
        assert len(code) == 12
        assert not set(code) & set("01OIL")


def test_issuing_twice_with_one_key_gives_one_coupon(design):
    member = new_member()
    first = coupons.issue_coupon(member=member, design=design, key="welcome:x")
    again = coupons.issue_coupon(member=member, design=design, key="welcome:x")
    assert first.pk == again.pk
    assert MemberCoupon.objects.count() == Voucher.objects.count() == 1


def test_the_member_uses_their_coupon_in_the_basket_and_at_checkout(
    client, design, product
):
    CountryFactory()
    member = new_member()
    coupon = coupons.issue_coupon(member=member, design=design, key="b:1")
    client.force_login(member.user)
    add_to_basket(client, product)

    said = enter_code(client, coupon.voucher.code.lower())

    assert said == [
        oscar("Voucher '%(code)s' added to basket", code=coupon.voucher.code)
    ]
    assert basket_discounts(client) == {
        "Member coupon: Birthday treat": Decimal("20.00")
    }
    response = client.post(
        reverse("checkout:shipping-address"), SHIPPING_ADDRESS, follow=True
    )
    assert response.status_code == 200
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.url == reverse("checkout:thank-you")
    coupon.voucher.refresh_from_db()
    assert coupon.voucher.num_orders == 1
    assert coupon.state() == "used"
    assert MemberCoupon.objects.used().get() == coupon
    assert not MemberCoupon.objects.usable().exists()

    # Single use: entering it again is Oscar's "already used".
    add_to_basket(client, product)
    assert enter_code(client, coupon.voucher.code) == [
        oscar("This voucher has already been used")
    ]


def test_another_shopper_is_told_exactly_what_an_unknown_code_gets(
    client, design, product
):
    owner = new_member()
    coupon = coupons.issue_coupon(member=owner, design=design, key="b:1")
    thief = new_member()
    client.force_login(thief.user)
    add_to_basket(client, product)

    said_for_coupon = enter_code(client, coupon.voucher.code)
    said_for_unknown = enter_code(client, "ABCDEFGHJKMN")

    code = coupon.voucher.code
    assert said_for_coupon == [unknown(code)]
    assert said_for_unknown == [unknown("ABCDEFGHJKMN")]
    assert not Basket.objects.get(owner=thief.user).vouchers.exists()


def test_a_guest_entering_a_member_coupon_is_told_it_is_unknown(
    client, design, product
):
    coupon = coupons.issue_coupon(member=new_member(), design=design, key="b:1")
    add_to_basket(client, product)
    code = coupon.voucher.code
    assert enter_code(client, code) == [unknown(code)]


def test_a_coupon_in_another_owners_basket_gives_no_discount(design, product):
    """The condition itself refuses it (e.g. a basket merged at sign-in)."""
    owner = new_member()
    coupon = coupons.issue_coupon(member=owner, design=design, key="b:1")
    other = new_member()
    basket = Basket.objects.create(owner=other.user)
    basket.vouchers.add(coupon.voucher)
    assert not coupon_usable_in(coupon.voucher, basket)
    mine = Basket.objects.create(owner=owner.user)
    mine.vouchers.add(coupon.voucher)
    assert coupon_usable_in(coupon.voucher, mine)


def test_below_the_minimum_spend_the_basket_does_not_qualify(client, design):
    cheap = ProductFactory(stockrecord__price=Decimal("10.00"))
    member = new_member()
    coupon = coupons.issue_coupon(member=member, design=design, key="b:1")
    client.force_login(member.user)
    add_to_basket(client, cheap)
    assert enter_code(client, coupon.voucher.code) == [
        oscar("Your basket does not qualify for a voucher discount")
    ]


def test_a_tier_design_needs_the_tier_at_use(client, product):
    silver = Tier.objects.create(code="silver", name="Silver", rank=1)
    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=100)
    design = CouponDesign.objects.create(
        name="Gold gift",
        purpose=CouponDesign.Purpose.TIER,
        benefit_type=CouponDesign.BenefitType.PERCENTAGE,
        value=Decimal("10"),
        tier=gold,
    )
    member = new_member(tier=gold)
    coupon = coupons.issue_coupon(member=member, design=design, key="t:1")
    Member.objects.filter(pk=member.pk).update(tier=silver)
    client.force_login(member.user)
    add_to_basket(client, product)
    assert enter_code(client, coupon.voucher.code) == [
        oscar("Your basket does not qualify for a voucher discount")
    ]
    Member.objects.filter(pk=member.pk).update(tier=gold)
    said = enter_code(client, coupon.voucher.code)
    assert said == [
        oscar("Voucher '%(code)s' added to basket", code=coupon.voucher.code)
    ]
    assert basket_discounts(client) == {"Member coupon: Gold gift": Decimal("10.00")}


@override_settings(
    OSCAR_LOYALTY_VOUCHER_ATTEMPTS_PER_USER=3,
    OSCAR_LOYALTY_VOUCHER_ATTEMPTS_PER_IP=100,
)
def test_guessing_codes_is_throttled_per_user(client, design, product):
    member = new_member()
    coupon = coupons.issue_coupon(member=member, design=design, key="b:1")
    client.force_login(member.user)
    add_to_basket(client, product)
    for guess in ("AAAAAAAAAAAA", "BBBBBBBBBBBB", "CCCCCCCCCCCC"):
        assert enter_code(client, guess) == [unknown(guess)]

    said = enter_code(client, "DDDDDDDDDDDD")

    assert said == [
        "Too many voucher codes were tried. Please try again in 15 minutes."
    ]
    # The shopper's own coupon (or a shop voucher) still goes through.
    code = coupon.voucher.code
    assert enter_code(client, code) == [
        oscar("Voucher '%(code)s' added to basket", code=code)
    ]


def test_another_members_coupon_is_throttled_like_an_unknown_code(
    client, design, product, settings
):
    settings.OSCAR_LOYALTY_VOUCHER_ATTEMPTS_PER_USER = 1
    other = coupons.issue_coupon(member=new_member(), design=design, key="o:1")
    client.force_login(new_member().user)
    add_to_basket(client, product)
    enter_code(client, "AAAAAAAAAAAA")
    assert enter_code(client, other.voucher.code)[0].startswith("Too many")


def test_a_guest_without_a_basket_hears_the_same_for_both(client, design):
    """Oscar says nothing when the visitor's basket is not saved yet."""
    coupon = coupons.issue_coupon(member=new_member(), design=design, key="b:1")
    for code in ("ABCDEFGHJKMN", coupon.voucher.code):
        response = client.post(reverse("basket:vouchers-add"), {"code": code})
        assert response.status_code == 302
        assert [str(m) for m in get_messages(response.wsgi_request)] == []


def test_a_nul_byte_in_a_code_is_oscars_form_error_not_a_crash(client, product):
    add_to_basket(client, product)
    response = client.post(reverse("basket:vouchers-add"), {"code": "AB\x00CD"})
    assert response.status_code == 302


def test_the_client_address_is_the_last_forwarded_one(rf, settings):
    from oscar_loyalty.coupons import client_address

    settings.OSCAR_LOYALTY_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert client_address(request) == "203.0.113.9"


@override_settings(
    OSCAR_LOYALTY_VOUCHER_ATTEMPTS_PER_USER=100,
    OSCAR_LOYALTY_VOUCHER_ATTEMPTS_PER_IP=2,
)
def test_guessing_codes_is_throttled_per_address_across_accounts(
    client, design, product
):
    for _ in range(2):
        client.force_login(new_member().user)
        add_to_basket(client, product)
        enter_code(client, "ZZZZZZZZZZZZ")
    client.force_login(new_member().user)
    add_to_basket(client, product)
    assert enter_code(client, "YYYYYYYYYYYY")[0].startswith("Too many voucher codes")


def test_a_known_shop_voucher_and_own_coupons_are_not_counted(client, design, product):
    member = new_member()
    coupon = coupons.issue_coupon(member=member, design=design, key="b:1")
    client.force_login(member.user)
    add_to_basket(client, product)
    enter_code(client, coupon.voucher.code)
    assert not AttemptCounter.objects.exists()


def test_attempt_counts_are_atomic_increments(db):
    now = timezone.now()
    assert [record_attempt("k", now=now) for _ in range(3)] == [1, 2, 3]
    assert AttemptCounter.objects.get().count == 3


def test_staff_issue_needs_a_reason(design):
    member = new_member()
    staff = UserFactory(is_staff=True)
    with pytest.raises(CouponReasonRequired):
        coupons.issue_by_staff(
            member=member, design=design, reason=" ", actor=Actor.from_user(staff)
        )
    assert not MemberCoupon.objects.exists()
    coupon = coupons.issue_by_staff(
        member=member, design=design, reason="Late parcel", actor=Actor.from_user(staff)
    )
    assert (coupon.reason, coupon.actor_id) == ("Late parcel", staff.pk)


def test_welcome_coupon_on_registration(client, db):
    CouponDesign.objects.create(
        name="Welcome gift",
        purpose=CouponDesign.Purpose.WELCOME,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )
    response = client.post(
        reverse("customer:register"),
        {
            "email": "new@example.com",
            "password1": "a-long-Passw0rd!",
            "password2": "a-long-Passw0rd!",
        },
    )
    assert response.status_code == 302
    coupon = MemberCoupon.objects.get()
    assert coupon.member.user.email == "new@example.com"
    assert coupon.design.name == "Welcome gift"


def test_coupon_lasts_until_the_end_of_its_last_day(design):
    now = datetime(2026, 3, 1, 9, 30, tzinfo=ZoneInfo(settings.TIME_ZONE))
    coupon = coupons.issue_coupon(member=new_member(), design=design, key="b", now=now)
    end = timezone.localtime(coupon.voucher.end_datetime)
    assert (end.date(), end.hour, end.minute) == (date(2026, 3, 31), 23, 59)
    assert coupon.state(now) == "usable"
    assert coupon.state(end + timedelta(seconds=1)) == "expired"


def test_birthday_coupons_once_a_year_and_29_february(design):
    mei = new_member(birth_month=3, birth_day=14)
    leap = new_member(birth_month=2, birth_day=29)
    new_member(birth_month=3, birth_day=20)
    new_member()

    assert coupons.issue_birthday_coupons(today=date(2027, 3, 14)) == 1
    assert coupons.issue_birthday_coupons(today=date(2027, 3, 14)) == 0
    assert coupons.issue_birthday_coupons(today=date(2027, 3, 15)) == 0  # catch-up
    assert MemberCoupon.objects.get().member == mei
    assert coupons.issue_birthday_coupons(today=date(2027, 2, 28)) == 1
    assert MemberCoupon.objects.filter(member=leap).count() == 1
    assert coupons.issue_birthday_coupons(today=date(2028, 3, 14)) == 1  # next year
    assert MemberCoupon.objects.filter(member=mei).count() == 2


def test_a_missed_birthday_run_is_caught_up_the_next_day(design):
    mei = new_member(birth_month=3, birth_day=14)
    assert coupons.issue_birthday_coupons(today=date(2027, 3, 15)) == 1
    assert MemberCoupon.objects.get().key == f"birthday:{design.pk}:{mei.pk}:2027"


def test_an_inactive_design_issues_nothing(design):
    design.is_active = False
    design.save()
    new_member(birth_month=3, birth_day=14)
    assert coupons.issue_birthday_coupons(today=date(2027, 3, 14)) == 0


@pytest.mark.parametrize(
    "benefit, value, discount_name, expected_total",
    [
        (CouponDesign.BenefitType.PERCENTAGE, "10", "basket", Decimal("90.00")),
        (CouponDesign.BenefitType.FIXED, "25", "basket", Decimal("75.00")),
        (CouponDesign.BenefitType.SHIPPING, "0", "shipping", Decimal("100.00")),
        (CouponDesign.BenefitType.PRODUCT, "0", "basket", Decimal("0.00")),
    ],
)
def test_every_kind_of_coupon_through_oscars_checkout(
    client, product, benefit, value, discount_name, expected_total
):
    from oscar.core.loading import get_class

    FixedPrice = get_class("shipping.methods", "FixedPrice")
    Repository = get_class("shipping.repository", "Repository")
    CountryFactory()
    design = CouponDesign.objects.create(
        name="Gift",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=benefit,
        value=Decimal(value),
        product=product if benefit == CouponDesign.BenefitType.PRODUCT else None,
    )
    member = new_member()
    coupon = coupons.issue_coupon(member=member, design=design, key="k")
    client.force_login(member.user)
    add_to_basket(client, product)
    enter_code(client, coupon.voucher.code)
    shipping = FixedPrice(Decimal("8.00"), Decimal("8.00"))
    original = Repository.methods
    Repository.methods = [shipping]
    try:
        client.post(reverse("checkout:shipping-address"), SHIPPING_ADDRESS, follow=True)
        response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    finally:
        Repository.methods = original
    assert response.url == reverse("checkout:thank-you")

    order = member.user.orders.get()
    assert order.basket_total_incl_tax == expected_total
    if discount_name == "shipping":
        assert order.shipping_incl_tax == Decimal("0.00")
    else:
        assert order.shipping_incl_tax == Decimal("8.00")
    applied = order.discounts.get()
    assert applied.voucher_code == coupon.voucher.code
    coupon.voucher.refresh_from_db()
    assert coupon.state() == "used"


def test_an_expired_own_coupon_gets_oscars_expired_message(client, design, product):
    member = new_member()
    coupon = coupons.issue_coupon(member=member, design=design, key="b:1")
    Voucher.objects.filter(pk=coupon.voucher_id).update(
        end_datetime=timezone.now() - timedelta(minutes=1)
    )
    client.force_login(member.user)
    add_to_basket(client, product)
    code = coupon.voucher.code
    assert enter_code(client, code) == [
        oscar("The '%(code)s' voucher has expired", code=code)
    ]
    assert MemberCoupon.objects.expired().get() == coupon
