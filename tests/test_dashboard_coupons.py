"""The owner's coupon screens in Oscar's dashboard: coupon designs (list, create,
edit, issue to a tier), the coupons issued, and a member's coupons on their page
with the form that gives them one.

Everything goes through Django's test client and Oscar's real URL permission
checks; coupons are issued with the coupon services and used through Oscar's real
basket and checkout, as in the shop. Celery runs eagerly in the suite.
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

from oscar_loyalty.models import CouponDesign, Member, MemberCoupon, Tier
from oscar_loyalty.services import coupons
from oscar_loyalty.services.ledger import SYSTEM, Actor
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import SHIPPING_ADDRESS, add_to_basket
from tests.factories import CountryFactory, ProductFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

Voucher = get_model("voucher", "Voucher")
ConditionalOffer = get_model("offer", "ConditionalOffer")

DESIGNS = reverse("loyalty_dashboard:loyalty-coupondesign-list")
NEW_DESIGN = reverse("loyalty_dashboard:loyalty-coupondesign-create")
COUPONS = reverse("loyalty_dashboard:loyalty-coupon-list")
DASHBOARD = "/shop/dashboard/"


def grant(user, *codenames):
    """``user`` with the plugin's permissions ``codenames`` as well."""
    before = user.user_permissions.count()
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=codenames, content_type__app_label="oscar_loyalty"
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


def update_url(design):
    return reverse(
        "loyalty_dashboard:loyalty-coupondesign-update", kwargs={"pk": design.pk}
    )


def issue_to_tier_url(design):
    return reverse(
        "loyalty_dashboard:loyalty-coupondesign-issue", kwargs={"pk": design.pk}
    )


def detail_url(member):
    return reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": member.pk})


def issue_url(member):
    return reverse(
        "loyalty_dashboard:loyalty-member-issue-coupon", kwargs={"pk": member.pk}
    )


def issue_data(design, reason="x"):
    """The member page's issue form as posted, with a fresh one-time key."""
    return {"design": design.pk, "reason": reason, "key": uuid.uuid4()}


def new_member(tier=None, **user_fields):
    member = get_or_create_member(UserFactory(**user_fields))
    if tier is not None:
        Member.objects.filter(pk=member.pk).update(tier=tier)
    return Member.objects.select_related("tier", "user").get(pk=member.pk)


def snapshot():
    """Every design's fields, to show a refused save changed nothing."""
    return list(CouponDesign.objects.order_by("pk").values())


def design_data(**fields):
    data = {
        "name": "Spring treat",
        "purpose": "winback",
        "benefit_type": "fixed",
        "value": "20",
        "minimum_spend": "50",
        "valid_days": "30",
        "multi_use": "",
        "tier": "",
        "is_active": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value not in (None, "")}


@pytest.fixture
def gold():
    return Tier.objects.create(code="gold", name="Gold", rank=2, threshold=1000)


@pytest.fixture
def silver():
    return Tier.objects.create(code="silver", name="Silver", rank=1, threshold=0)


@pytest.fixture
def birthday():
    return CouponDesign.objects.create(
        name="Birthday treat",
        purpose=CouponDesign.Purpose.BIRTHDAY,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        minimum_spend=Decimal("50"),
        valid_days=30,
    )


@pytest.fixture
def gold_gift(gold):
    return CouponDesign.objects.create(
        name="Gold gift",
        purpose=CouponDesign.Purpose.TIER,
        benefit_type=CouponDesign.BenefitType.PERCENTAGE,
        value=Decimal("10"),
        valid_days=60,
        multi_use=True,
        tier=gold,
    )


@pytest.fixture
def owner(client):
    """Staff who may see, create and change coupon designs and see coupons."""
    user = grant(
        StaffFactory(first_name="Olive", last_name="Owner"),
        "view_coupondesign",
        "add_coupondesign",
        "change_coupondesign",
        "view_membercoupon",
        "view_member",
    )
    client.force_login(user)
    return user


@pytest.fixture
def desk(client):
    """Staff who may see members and give them coupons."""
    user = grant(
        StaffFactory(first_name="Tia", last_name="Desk"), "view_member", "issue_coupon"
    )
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    """Staff who may see members, but not give them coupons."""
    user = grant(StaffFactory(first_name="Viv", last_name="Ewer"), "view_member")
    client.force_login(user)
    return user


def used_coupon(design, member):
    """A coupon of ``design`` used by ``member`` through Oscar's real basket and
    checkout; returns the coupon and the order."""
    CountryFactory()
    product = ProductFactory(stockrecord__price=Decimal("100.00"))
    coupon = coupons.issue_coupon(member=member, design=design, key=f"use:{member.pk}")
    shopper = Client()
    shopper.force_login(member.user)
    add_to_basket(shopper, product)
    response = shopper.post(
        reverse("basket:vouchers-add"), {"code": coupon.voucher.code}
    )
    assert response.status_code == 302
    response = shopper.post(
        reverse("checkout:shipping-address"), SHIPPING_ADDRESS, follow=True
    )
    assert response.status_code == 200
    response = shopper.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.url == reverse("checkout:thank-you")
    coupon.voucher.refresh_from_db()
    assert coupon.voucher.num_orders == 1
    return coupon, coupon.voucher.applications.get().order


def expired_coupon(design, member, key="old"):
    return coupons.issue_coupon(
        member=member,
        design=design,
        key=key,
        now=timezone.now() - timedelta(days=design.valid_days + 5),
    )


# Permissions -------------------------------------------------------------------------

EVERYTHING = {
    "view_coupondesign",
    "add_coupondesign",
    "change_coupondesign",
    "view_membercoupon",
    "view_member",
    "issue_coupon",
}


def coupon_screens(design, member):
    """(url, method, permissions that open it) for each of this file's screens."""
    return [
        (DESIGNS, "get", {"view_coupondesign", "change_coupondesign"}),
        (NEW_DESIGN, "get", {"add_coupondesign"}),
        (update_url(design), "get", {"change_coupondesign"}),
        (issue_to_tier_url(design), "post", {"issue_coupon"}),
        (COUPONS, "get", {"view_membercoupon"}),
        (issue_url(member), "post", {"issue_coupon"}),
    ]


def test_anonymous_visitors_are_sent_to_the_dashboard_login(client, gold_gift):
    member = new_member()

    for url, method, _perms in coupon_screens(gold_gift, member):
        response = getattr(client, method)(url)

        assert response.status_code == 302, url
        assert response.url.startswith("/shop/dashboard/login/?next="), url


def test_staff_without_the_permission_are_refused_and_nothing_changes(
    client, gold_gift, gold
):
    member = new_member(gold)
    before = snapshot()
    data = design_data(name="Hacked", value="99", purpose="staff") | {
        "design": gold_gift.pk,
        "reason": "No right",
        "key": uuid.uuid4(),
    }

    for url, method, opening in coupon_screens(gold_gift, member):
        client.force_login(grant(StaffFactory(), *(EVERYTHING - opening)))
        if method == "get":
            assert client.get(url).status_code == 403, url
        assert client.post(url, data).status_code == 403, url

    assert snapshot() == before
    assert not MemberCoupon.objects.exists()
    assert not LogEntry.objects.exists()


def test_staff_without_view_member_cannot_issue_to_a_member(client, birthday):
    member = new_member()
    client.force_login(grant(StaffFactory(), *(EVERYTHING - {"view_member"})))

    response = client.post(issue_url(member), issue_data(birthday))

    assert response.status_code == 403
    assert not MemberCoupon.objects.exists()


def test_a_shopper_with_the_permission_is_still_refused(client, birthday):
    client.force_login(grant(UserFactory(), "view_coupondesign", "view_membercoupon"))

    assert client.get(DESIGNS).status_code == 403
    assert client.get(COUPONS).status_code == 403


def test_staff_with_the_permission_are_let_in(client, gold_gift, gold):
    member = new_member(gold)

    for url, method, opening in coupon_screens(gold_gift, member):
        for codename in sorted(opening):
            perms = {codename} | (
                {"view_member"} if url == issue_url(member) else set()
            )
            client.force_login(grant(StaffFactory(), *perms))
            if method == "get":
                assert client.get(url).status_code == 200, url
            else:
                response = client.post(url, issue_data(gold_gift, reason="Hi"))
                assert response.status_code == 302, url


def test_the_menu_lists_coupons_for_those_who_may_see_them(client):
    client.force_login(grant(StaffFactory(), "view_coupondesign"))
    html = html_of(client.get(DASHBOARD))
    assert f'href="{DESIGNS}"' in html
    assert f'href="{COUPONS}"' not in html

    client.force_login(grant(StaffFactory(), "view_membercoupon"))
    html = html_of(client.get(DASHBOARD))
    assert f'href="{COUPONS}"' in html
    assert f'href="{DESIGNS}"' not in html

    client.force_login(grant(StaffFactory(), "view_member"))
    html = html_of(client.get(DASHBOARD))
    assert f'href="{DESIGNS}"' not in html and f'href="{COUPONS}"' not in html


def test_those_who_may_only_view_designs_see_no_create_or_edit_links(client, birthday):
    client.force_login(grant(StaffFactory(), "view_coupondesign"))

    html = html_of(client.get(DESIGNS))

    assert "Birthday treat" in html
    assert NEW_DESIGN not in html
    assert update_url(birthday) not in html
    assert COUPONS not in html  # nor links to the coupons, without view_membercoupon


# The list of designs -----------------------------------------------------------------


def test_the_list_shows_each_design_with_its_benefit_and_coupons(
    client, owner, birthday, gold_gift, gold
):
    shipping = CouponDesign.objects.create(
        name="Free delivery",
        purpose=CouponDesign.Purpose.WELCOME,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
        valid_days=7,
        is_active=False,
    )
    mei, bo = new_member(gold), new_member(gold)
    used_coupon(birthday, mei)
    coupons.issue_coupon(member=bo, design=birthday, key="b:bo")
    expired_coupon(birthday, bo)
    coupons.issue_coupon(member=mei, design=gold_gift, key="g:mei")

    response = client.get(DESIGNS)

    assert response.status_code == 200
    html = html_of(response)
    row = part(html, f"loyalty-coupon-design-{birthday.pk}", "</tr>")
    for text in (
        "Birthday treat",
        "Birthday (every year)",
        "CN¥20.00 off, min CN¥50.00",
        ">30<",
        "One order",
        ">Yes<",
    ):
        assert text in row, text
    assert 'loyalty-issued-count"><a href="' in row and ">3</a>" in row
    assert f"?design={birthday.pk}" in row
    assert 'loyalty-used-count">1<' in row
    assert update_url(birthday) in row
    row = part(html, f"loyalty-coupon-design-{gold_gift.pk}", "</tr>")
    for text in ("10% off", "Several orders", "Gold", ">60<"):
        assert text in row, text
    assert "min" not in row
    assert 'loyalty-used-count">0<' in row
    row = part(html, f"loyalty-coupon-design-{shipping.pk}", "</tr>")
    for text in ("Free shipping", ">No<", "Welcome (on sign-up)"):
        assert text in row, text
    assert 'loyalty-issued-count">0<' in row
    # Issuing designs first.
    assert html.index(f"design-{birthday.pk}") < html.index(f"design-{shipping.pk}")
    assert NEW_DESIGN in html


def test_the_list_without_designs_says_so(client, owner):
    assert "No coupon designs yet" in html_of(client.get(DESIGNS))


def test_the_list_counts_coupons_in_its_one_query(
    client, owner, birthday, django_assert_max_num_queries
):
    member = new_member()
    coupons.issue_coupon(member=member, design=birthday, key="one")
    client.get(DESIGNS)  # the session and permissions are cached from here on
    with django_assert_max_num_queries(1000) as one_design:
        client.get(DESIGNS)

    for number in range(5):
        design = CouponDesign.objects.create(
            name=f"Design {number}",
            purpose=CouponDesign.Purpose.STAFF,
            benefit_type=CouponDesign.BenefitType.PERCENTAGE,
            value=Decimal("5"),
        )
        for key in range(4):
            coupons.issue_coupon(member=member, design=design, key=f"{number}:{key}")
    with django_assert_max_num_queries(len(one_design.captured_queries)):
        response = client.get(DESIGNS)

    assert sorted(d.issued_count for d in response.context["designs"]) == [
        1,
        4,
        4,
        4,
        4,
        4,
    ]


# Creating and editing designs --------------------------------------------------------


def test_a_new_design_is_saved_with_its_offer_and_logged(client, owner):
    response = client.post(NEW_DESIGN, design_data(), follow=True)

    assert response.redirect_chain == [(DESIGNS, 302)]
    assert "Coupon design “Spring treat” created." in html_of(response)
    design = CouponDesign.objects.get()
    assert (design.purpose, design.benefit_type) == ("winback", "fixed")
    assert (design.value, design.minimum_spend) == (Decimal(20), Decimal(50))
    assert (design.valid_days, design.multi_use, design.is_active) == (30, False, True)
    assert design.offer.benefit.value == Decimal(20)
    assert design.offer.condition.value == Decimal(50)
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, ADDITION)
    assert entry.object_id == str(design.pk)
    assert "name: Spring treat" in entry.change_message
    assert "value: 20.00" in entry.change_message
    assert "tier: —" in entry.change_message


def test_free_shipping_ignores_the_value_typed(client, owner):
    response = client.post(
        NEW_DESIGN, design_data(benefit_type="shipping", value="-3", minimum_spend="0")
    )

    assert response.status_code == 302
    design = CouponDesign.objects.get()
    assert design.value == 0
    assert "Free shipping" in html_of(client.get(DESIGNS))


def test_a_tier_design_is_saved_with_its_tier(client, owner, gold):
    response = client.post(
        NEW_DESIGN,
        design_data(
            purpose="tier", tier=gold.pk, benefit_type="percentage", value="15"
        ),
    )

    assert response.status_code == 302
    design = CouponDesign.objects.get()
    assert (design.tier, design.value) == (gold, Decimal(15))
    assert "tier: gold" in LogEntry.objects.get().change_message


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": ""}, "name", "Give the design a name, e.g. Birthday treat."),
        (
            {"benefit_type": "percentage", "value": "0"},
            "value",
            "Enter a percentage more than 0 and at most 100.",
        ),
        (
            {"benefit_type": "percentage", "value": "100.01"},
            "value",
            "Enter a percentage more than 0 and at most 100.",
        ),
        (
            {"benefit_type": "percentage", "value": ""},
            "value",
            "Enter a percentage more than 0 and at most 100.",
        ),
        ({"value": "0"}, "value", "Enter an amount off greater than zero."),
        ({"value": "-5"}, "value", "Enter an amount off greater than zero."),
        ({"value": "lots"}, "value", "Enter a number."),
        (
            {"purpose": "tier"},
            "tier",
            "Choose the tier whose members get this coupon: tier-exclusive "
            "coupons need one.",
        ),
        (
            {"valid_days": "0"},
            "valid_days",
            "A coupon must be valid for at least one day.",
        ),
        (
            {"valid_days": "-1"},
            "valid_days",
            "A coupon must be valid for at least one day.",
        ),
        (
            {"minimum_spend": "-1"},
            "minimum_spend",
            "The minimum spend cannot be negative: enter 0 for none.",
        ),
        ({"purpose": "nonsense"}, "purpose", "Select a valid choice."),
    ],
)
def test_a_bad_design_is_shown_on_the_form_and_changes_nothing(
    client, owner, birthday, fields, field, message
):
    before = snapshot()
    offers = ConditionalOffer.objects.count()

    response = client.post(NEW_DESIGN, design_data(**fields))

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message in html_of(response)
    assert snapshot() == before
    assert ConditionalOffer.objects.count() == offers
    assert not LogEntry.objects.exists()


def test_a_percentage_of_exactly_100_is_allowed(client, owner):
    response = client.post(
        NEW_DESIGN, design_data(benefit_type="percentage", value="100")
    )

    assert response.status_code == 302
    assert CouponDesign.objects.get().value == 100


def test_editing_a_design_logs_each_change_and_issued_coupons_follow(
    client, owner, birthday
):
    coupon = coupons.issue_coupon(member=new_member(), design=birthday, key="b:1")
    page = html_of(client.get(update_url(birthday)))
    assert "1 coupon issued so far." in page
    assert "Coupons already issued follow changes" in page

    response = client.post(
        update_url(birthday),
        design_data(name="Birthday treat", purpose="birthday", value="25"),
        follow=True,
    )

    assert response.redirect_chain == [(DESIGNS, 302)]
    assert "Coupon design “Birthday treat” saved." in html_of(response)
    birthday.refresh_from_db()
    assert birthday.value == Decimal(25)
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, CHANGE)
    assert entry.change_message == "Changed value: 20.00 → 25.00"
    # The coupon is a voucher of the design's offer, whose benefit changed.
    assert coupon.voucher.offers.get().benefit.value == Decimal(25)


def test_switching_a_design_off_is_logged(client, owner, birthday):
    response = client.post(
        update_url(birthday),
        design_data(name="Birthday treat", purpose="birthday", is_active=""),
    )

    assert response.status_code == 302
    birthday.refresh_from_db()
    assert not birthday.is_active
    assert "is_active: True → False" in LogEntry.objects.get().change_message


def test_a_bad_edit_is_shown_on_the_form_and_changes_nothing(client, owner, birthday):
    before = snapshot()

    response = client.post(
        update_url(birthday),
        design_data(name="Birthday treat", purpose="birthday", valid_days="0"),
    )

    assert response.status_code == 200
    assert "A coupon must be valid for at least one day." in html_of(response)
    assert snapshot() == before
    assert not LogEntry.objects.exists()


def test_names_are_escaped_on_the_screens(client, owner, desk):
    design = CouponDesign.objects.create(
        name="<b>Bold</b>",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
    )
    member = new_member()
    coupons.issue_by_staff(
        member=member, design=design, reason="<i>why</i>", actor=SYSTEM
    )
    client.force_login(grant(owner, "issue_coupon"))

    for url in (DESIGNS, update_url(design), COUPONS, detail_url(member)):
        raw = client.get(url).content.decode()
        assert "<b>Bold</b>" not in raw, url
        assert "&lt;b&gt;Bold&lt;/b&gt;" in raw, url
    assert "<i>why</i>" not in client.get(COUPONS).content.decode()


def test_an_unknown_design_is_not_found(client, owner):
    url = reverse("loyalty_dashboard:loyalty-coupondesign-update", kwargs={"pk": 99999})

    assert client.get(url).status_code == 404


# Issuing a tier design to the members already in the tier ---------------------------


def test_the_issue_button_is_only_on_an_issuing_tier_design(
    client, owner, gold_gift, birthday
):
    client.force_login(grant(owner, "issue_coupon"))
    page = html_of(client.get(update_url(gold_gift)))
    form = part(page, "loyalty-coupondesign-issue", "</form>")
    assert issue_to_tier_url(gold_gift) in form
    assert "Issue to current members of Gold and above" in form
    assert "Each member gets it once" in form

    assert issue_to_tier_url(birthday) not in html_of(client.get(update_url(birthday)))
    gold_gift.is_active = False
    gold_gift.save()
    page = html_of(client.get(update_url(gold_gift)))
    assert 'id="loyalty-coupondesign-issue"' not in page


def test_without_the_issue_permission_there_is_no_issue_button(
    client, owner, gold_gift
):
    page = html_of(client.get(update_url(gold_gift)))

    assert 'id="loyalty-coupondesign-issue"' not in page
    assert issue_to_tier_url(gold_gift) not in page


def test_issuing_to_the_tier_reaches_its_members_and_above_once(
    client, owner, gold_gift, gold, silver, django_capture_on_commit_callbacks
):
    platinum = Tier.objects.create(code="platinum", name="Platinum", rank=3)
    in_gold, in_platinum = new_member(gold), new_member(platinum)
    new_member(silver)
    new_member(None)
    client.force_login(grant(owner, "issue_coupon"))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(issue_to_tier_url(gold_gift), follow=True)

    assert len(callbacks) >= 1
    assert response.redirect_chain == [(update_url(gold_gift), 302)]
    assert (
        "Issuing “Gold gift” to the current members of Gold and above. Members who "
        "already have it get no second one."
    ) in messages_of(response)
    assert set(MemberCoupon.objects.values_list("member_id", flat=True)) == {
        in_gold.pk,
        in_platinum.pk,
    }
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, CHANGE)
    assert entry.object_id == str(gold_gift.pk)
    assert entry.change_message == "Issued to current members of gold and above"

    with django_capture_on_commit_callbacks(execute=True):
        client.post(issue_to_tier_url(gold_gift))

    assert MemberCoupon.objects.count() == 2
    assert LogEntry.objects.count() == 2


def test_issuing_a_design_that_is_not_an_issuing_tier_design_is_refused(
    client, owner, birthday, gold_gift, gold, django_capture_on_commit_callbacks
):
    new_member(gold)
    gold_gift.is_active = False
    gold_gift.save()
    client.force_login(grant(owner, "issue_coupon"))

    for design in (birthday, gold_gift):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(issue_to_tier_url(design), follow=True)
        assert response.status_code == 200
        assert (
            "Only an issuing tier-exclusive design can be issued to the members of "
            "its tier: nothing was issued."
        ) in messages_of(response)

    assert not MemberCoupon.objects.exists()
    assert not LogEntry.objects.exists()


def test_issuing_to_the_tier_needs_a_post(client, owner, gold_gift, gold):
    new_member(gold)
    client.force_login(grant(owner, "issue_coupon"))

    assert client.get(issue_to_tier_url(gold_gift)).status_code == 405
    assert not MemberCoupon.objects.exists()


# The coupons issued ------------------------------------------------------------------


@pytest.fixture
def issued(birthday, gold_gift, gold, desk):
    """Mei's used birthday coupon and her gold gift (usable), Bo's expired birthday
    coupon and his usable one from staff."""
    mei = new_member(gold, email="mei.lin@example.com")
    bo = new_member(None, email="bo.chen@example.com")
    used, order = used_coupon(birthday, mei)
    gift = coupons.issue_coupon(member=mei, design=gold_gift, key="g:mei")
    old = expired_coupon(birthday, bo)
    staff = coupons.issue_by_staff(
        member=bo, design=birthday, reason="Late parcel", actor=Actor.from_user(desk)
    )
    return {
        "mei": mei,
        "bo": bo,
        "used": used,
        "order": order,
        "gift": gift,
        "old": old,
        "staff": staff,
    }


def listed(response):
    return [coupon.pk for coupon in response.context["coupons"]]


def test_the_coupon_list_shows_each_coupon_with_its_state_and_orders(
    client, owner, issued
):
    client.force_login(owner)

    response = client.get(COUPONS)

    assert response.status_code == 200
    html = html_of(response)
    assert "4 coupons" in html
    row = part(html, f"loyalty-coupon-{issued['used'].pk}", "</tr>")
    mei = issued["mei"]
    for text in (
        issued["used"].voucher.code,
        f'<a href="{detail_url(mei)}">{mei.number}</a>',
        "mei.lin@example.com",
        "Birthday treat",
        ">Used<",
        issued["order"].number,
        "Automatically",
    ):
        assert text in row, text
    row = part(html, f"loyalty-coupon-{issued['staff'].pk}", "</tr>")
    for text in ("Usable", "Tia Desk", "Late parcel", "—"):
        assert text in row, text
    assert ">Expired<" in part(html, f"loyalty-coupon-{issued['old'].pk}", "</tr>")
    # Newest first.
    assert listed(response)[0] == issued["staff"].pk


def test_order_numbers_link_to_the_order_for_those_who_may_see_orders(
    client, owner, issued
):
    order = issued["order"]
    order_url = reverse("dashboard:order-detail", kwargs={"number": order.number})
    client.force_login(owner)
    assert order_url not in html_of(client.get(COUPONS))

    owner.user_permissions.add(
        Permission.objects.get(codename="view_order", content_type__app_label="order")
    )
    owner = type(owner).objects.get(pk=owner.pk)  # permissions are cached
    client.force_login(owner)
    assert order_url in html_of(client.get(COUPONS))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("USED_CODE", ["used"]),
        ("used_code_lower", ["used"]),
        (" USED_CODE ", ["used"]),
        ("MEI_NUMBER", ["gift", "used"]),
        ("mei_number_lower", ["gift", "used"]),
        ("MEI.LIN@example.COM", ["gift", "used"]),
        ("bo.chen@example.com", ["staff", "old"]),
        ("USED_CODE_START", []),
        ("mei.lin", []),
    ],
)
def test_coupons_are_found_by_code_member_number_or_email(
    client, owner, issued, query, expected
):
    code, number = issued["used"].voucher.code, issued["mei"].number
    query = {
        "USED_CODE": code,
        "used_code_lower": code.lower(),
        " USED_CODE ": f" {code} ",
        "MEI_NUMBER": number,
        "mei_number_lower": number.lower(),
        "USED_CODE_START": code[:6],
    }.get(query, query)
    client.force_login(owner)

    response = client.get(COUPONS, {"q": query})

    assert listed(response) == [issued[name].pk for name in expected]
    if not expected:
        assert "No coupons found." in html_of(response)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("usable", ["staff", "gift"]),
        ("used", ["used"]),
        ("expired", ["old"]),
        ("", ["staff", "old", "gift", "used"]),
    ],
)
def test_coupons_are_filtered_by_state(client, owner, issued, state, expected):
    client.force_login(owner)

    response = client.get(COUPONS, {"state": state})

    assert sorted(listed(response)) == sorted(issued[name].pk for name in expected)


def test_coupons_are_filtered_by_design_and_state_together(
    client, owner, issued, birthday, gold_gift
):
    client.force_login(owner)

    by_design = client.get(COUPONS, {"design": gold_gift.pk})
    both = client.get(COUPONS, {"design": birthday.pk, "state": "usable"})
    with_member = client.get(
        COUPONS, {"design": birthday.pk, "q": issued["bo"].number, "state": "expired"}
    )

    assert listed(by_design) == [issued["gift"].pk]
    assert listed(both) == [issued["staff"].pk]
    assert listed(with_member) == [issued["old"].pk]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"design": "99999"}, "Select a valid choice."),
        ({"state": "lost"}, "Select a valid choice."),
    ],
)
def test_a_bad_filter_finds_nothing_and_says_why(
    client, owner, issued, params, message
):
    client.force_login(owner)

    response = client.get(COUPONS, params)

    assert response.status_code == 200
    assert listed(response) == []
    assert message in html_of(response)


def test_the_coupon_list_runs_the_same_queries_for_3_or_30_coupons(
    client, owner, birthday, gold_gift, gold, django_assert_max_num_queries
):
    members = [new_member(gold) for _ in range(3)]
    for member in members:
        coupons.issue_coupon(member=member, design=birthday, key=f"b:{member.pk}")
    used_coupon(gold_gift, members[0])
    client.get(COUPONS)  # the session and permissions are cached from here on
    with django_assert_max_num_queries(1000) as few:
        client.get(COUPONS)

    for number in range(27):
        member = new_member(gold)
        design = birthday if number % 2 else gold_gift
        coupons.issue_coupon(member=member, design=design, key=f"more:{number}")
        if number % 9 == 0:
            expired_coupon(birthday, member, key=f"old:{number}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(COUPONS, {"page": 1})

    assert len(response.context["coupons"]) == 20
    assert response.context["paginator"].count == 34
    assert "Page 1 of 2" in html_of(response)


def test_later_pages_keep_the_filter(client, owner, birthday):
    member = new_member()
    for number in range(25):
        coupons.issue_coupon(member=member, design=birthday, key=f"k{number}")

    response = client.get(COUPONS, {"state": "usable", "page": 2})

    assert len(response.context["coupons"]) == 5
    assert "?state=usable&page=1" in html_of(response)


# A member's coupons ------------------------------------------------------------------


def test_a_members_page_lists_their_coupons(client, viewer, birthday, gold_gift, gold):
    member = new_member(gold)
    other = new_member(gold)
    usable = coupons.issue_coupon(member=member, design=gold_gift, key="g")
    old = expired_coupon(birthday, member)
    theirs = coupons.issue_coupon(member=other, design=birthday, key="other")
    client.force_login(viewer)

    html = html_of(client.get(detail_url(member)))

    box = part(html, "loyalty-member-coupons")
    assert usable.voucher.code in box and old.voucher.code in box
    assert theirs.voucher.code not in box
    row = part(box, f"loyalty-member-coupon-{usable.pk}", "</tr>")
    assert "Gold gift" in row and "Usable" in row
    assert "Expired" in part(box, f"loyalty-member-coupon-{old.pk}", "</tr>")
    # Without the permission: no form.
    assert 'id="loyalty-issue-coupon"' not in html
    assert issue_url(member) not in html


def test_a_member_without_coupons_says_so(client, viewer):
    member = new_member()

    html = html_of(client.get(detail_url(member)))

    assert "No coupons yet." in part(html, "loyalty-member-coupons")


def test_a_members_page_shows_twenty_coupons_and_links_to_the_rest(
    client, owner, birthday
):
    member = new_member()
    for number in range(22):
        coupons.issue_coupon(member=member, design=birthday, key=f"k{number}")

    response = client.get(detail_url(member))

    assert len(response.context["member_coupons"]) == 20
    assert f"{COUPONS}?q={member.number}" in html_of(response)


def test_the_issue_form_offers_only_issuing_designs(client, desk, birthday, gold_gift):
    gold_gift.is_active = False
    gold_gift.save()
    member = new_member()

    html = html_of(client.get(detail_url(member)))

    form = part(html, "loyalty-issue-coupon", "</form>")
    assert issue_url(member) in form
    assert "Birthday treat" in form
    assert "Gold gift" not in form


def test_without_issuing_designs_the_form_says_so(client, desk, birthday):
    birthday.is_active = False
    birthday.save()
    member = new_member()

    html = html_of(client.get(detail_url(member)))

    assert "No coupon design is issuing coupons" in html
    assert issue_url(member) not in html


def test_staff_issue_a_coupon_with_a_reason_and_it_is_recorded(client, desk, birthday):
    member = new_member()

    response = client.post(
        issue_url(member), issue_data(birthday, reason=" Late parcel "), follow=True
    )

    assert response.redirect_chain == [(detail_url(member), 302)]
    coupon = MemberCoupon.objects.get()
    assert (coupon.member, coupon.design) == (member, birthday)
    assert coupon.reason == "Late parcel"
    assert (coupon.actor_id, coupon.actor_name) == (desk.pk, "Tia Desk")
    assert coupon.key.startswith("staff:")
    assert (
        f"Coupon “Birthday treat” issued to member {member.number}, code "
        f"{coupon.voucher.code}."
    ) in messages_of(response)
    assert coupon.voucher.code in part(html_of(response), "loyalty-member-coupons")
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (desk.pk, CHANGE)
    assert entry.content_type.model == "member"
    assert entry.object_id == str(member.pk)
    assert "Birthday treat" in entry.change_message
    assert "Late parcel" in entry.change_message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": ""}, "Give a reason for issuing this coupon."),
        ({"reason": "   "}, "Give a reason for issuing this coupon."),
        ({"design": "INACTIVE"}, "This coupon design is not issuing coupons"),
        ({"design": "99999"}, "This coupon design is not issuing coupons"),
        ({"design": ""}, "Choose a coupon design that is issuing coupons."),
        ({"design": "GOLD"}, "“Gold gift” is for members of Gold and above"),
    ],
)
def test_a_bad_issue_is_refused_with_a_message_and_writes_nothing(
    client, desk, birthday, gold_gift, silver, data, message
):
    member = new_member(silver)
    inactive = CouponDesign.objects.create(
        name="Old",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.SHIPPING,
        is_active=False,
    )
    data = {"design": birthday.pk, "reason": "Because", "key": uuid.uuid4(), **data}
    data["design"] = {"INACTIVE": inactive.pk, "GOLD": gold_gift.pk}.get(
        data["design"], data["design"]
    )

    response = client.post(issue_url(member), data, follow=True)

    assert response.redirect_chain == [(detail_url(member), 302)]
    said = messages_of(response)
    assert len(said) == 1
    assert said[0].startswith("No coupon was issued: ")
    assert message in said[0]
    assert not MemberCoupon.objects.exists()
    assert not Voucher.objects.exists()
    assert not LogEntry.objects.exists()


def test_a_member_in_the_tier_may_be_given_its_coupon(client, desk, gold_gift, gold):
    member = new_member(gold)

    response = client.post(issue_url(member), issue_data(gold_gift, reason="VIP"))

    assert response.status_code == 302
    assert MemberCoupon.objects.get().design == gold_gift


def test_staff_without_the_issue_permission_are_refused(client, viewer, birthday):
    member = new_member()

    response = client.post(issue_url(member), issue_data(birthday))

    assert response.status_code == 403
    assert not MemberCoupon.objects.exists()


def test_issuing_to_a_member_needs_a_post(client, desk, birthday):
    member = new_member()

    response = client.get(issue_url(member), issue_data(birthday))

    assert response.status_code == 405
    assert not MemberCoupon.objects.exists()


def test_issuing_to_a_member_needs_the_csrf_token(desk, birthday):
    member = new_member()
    client = Client(enforce_csrf_checks=True)
    client.force_login(desk)

    response = client.post(issue_url(member), issue_data(birthday))

    assert response.status_code == 403
    assert not MemberCoupon.objects.exists()


def test_issuing_to_an_unknown_member_is_not_found(client, desk, birthday):
    url = reverse("loyalty_dashboard:loyalty-member-issue-coupon", kwargs={"pk": 9999})

    response = client.post(url, issue_data(birthday))

    assert response.status_code == 404
    assert not MemberCoupon.objects.exists()
