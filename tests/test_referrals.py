"""Referrals: codes and links, capture of ``?ref=`` and of the device cookie,
attaching at Oscar's real registration, and rewards on the new member's first
confirmed order (real Oscar orders through the checkout and its statuses), with
the abuse cases refused. Every scenario ends with a healthy ledger.

``LoyaltyMiddleware`` calls :mod:`oscar_loyalty.referral_capture` around every
request, as a shop runs it.
"""

import secrets
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty import action_tasks, referral_capture
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import (
    ActionAward,
    ActionRule,
    Member,
    MemberDevice,
    OrderActivity,
    Referral,
)
from oscar_loyalty.referral_capture import DEVICE_COOKIE, SESSION_KEY
from oscar_loyalty.services import referrals
from oscar_loyalty.services.coupons import CODE_ALPHABET
from oscar_loyalty.services.members import get_or_create_member
from oscar_loyalty.services.referrals import (
    attach_referral,
    referral_code,
    referral_link,
    reward_confirmed_referrals,
)
from tests.checkout import SHIPPING_ADDRESS, add_to_basket, place_order
from tests.concurrency import run_in_processes
from tests.factories import PASSWORD, CountryFactory, ProductFactory, UserFactory

Order = get_model("order", "Order")
UserAddress = get_model("address", "UserAddress")
Country = get_model("address", "Country")

Action = ActionRule.Action
Status = Referral.Status
NOTHING = {"rewarded": 0, "refused": 0}

#: Where the referrer has their orders delivered (the friends use SHIPPING_ADDRESS).
REFERRER_ADDRESS = {
    "first_name": "Wei",
    "last_name": "Zhang",
    "line1": "12 Huaihai Middle Road",
    "line4": "Shanghai",
    "postcode": "200021",
    "country": "CN",
    "phone_number": "+8613900139000",
}


@pytest.fixture(autouse=True)
def shop(db, settings):
    """A shipping country, and a healthy ledger after each test."""
    CountryFactory()
    yield
    assert find_drift() == []


@pytest.fixture
def rules(db):
    return (
        ActionRule.objects.create(action=Action.REFERRER, points=300),
        ActionRule.objects.create(action=Action.REFERRED, points=200),
    )


@pytest.fixture
def product(db):
    return ProductFactory(title="Bi Luo Chun", stockrecord__price=Decimal("50.00"))


def new_member(email=None):
    user = UserFactory(**({"email": email} if email else {}))
    return get_or_create_member(user)


def signed_in(member):
    browser = Client()
    browser.force_login(member.user)
    return browser


def sign_in(browser, member):
    """Through Oscar's login form, as a person does (the browser's device
    cookie is recorded as the member's)."""
    browser.get(reverse("customer:login"))  # the first page gives the cookie
    response = browser.post(
        reverse("customer:login"),
        {
            "login-username": member.user.email,
            "login-password": PASSWORD,
            "login_submit": "Log In",
        },
    )
    assert response.status_code == 302, response.content[:500]
    return browser


def place_order_to(client, product, address):
    """``tests.checkout.place_order``, shipping to ``address``."""
    before = set(Order.objects.values_list("pk", flat=True))
    add_to_basket(client, product)
    response = client.post(reverse("checkout:shipping-address"), address, follow=True)
    assert response.redirect_chain, "the shipping address form was not accepted"
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302
    return Order.objects.exclude(pk__in=before).get()


def advance(order, *statuses):
    """Move the order through Oscar's status pipeline, as staff do."""
    for status in statuses:
        order.set_status(status)


def complete(order):
    advance(order, "Being processed", "Shipped", "Complete")


def register(client, email):
    response = client.post(
        reverse("customer:register"),
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302, getattr(response, "context", None)
    return Member.objects.get(user__email__iexact=email)


def follow_link(client, referrer):
    link = referral_link(RequestFactory().get("/"), referrer)
    response = client.get(link)
    assert response.status_code == 302  # Oscar's home redirects to the catalogue
    return link


def awarded(member):
    return dict(
        ActionAward.objects.filter(member=member).values_list("action", "points")
    )


def points(member):
    member.refresh_from_db()
    return member.available


# Codes and links ---------------------------------------------------------------------


def test_a_referral_code_is_drawn_once_from_the_unambiguous_alphabet():
    member = new_member()
    assert member.referral_code is None

    code = referral_code(member)

    assert len(code) == 8
    assert set(code) <= set(CODE_ALPHABET)
    assert Member.objects.get(pk=member.pk).referral_code == code
    assert referral_code(Member.objects.get(pk=member.pk)) == code


def test_a_code_already_taken_is_drawn_again(monkeypatch):
    taken = new_member()
    Member.objects.filter(pk=taken.pk).update(referral_code="AAAAAAAA")
    member = new_member()
    draws = iter("A" * 8 + "B" * 8)
    real_choice = secrets.choice
    monkeypatch.setattr(
        secrets,
        "choice",
        lambda seq: next(draws) if seq == CODE_ALPHABET else real_choice(seq),
    )

    assert referral_code(member) == "BBBBBBBB"
    assert next(draws, None) is None  # drawn twice


def test_the_link_is_the_shops_home_with_the_code():
    member = new_member()
    request = RequestFactory().get("/anything/", secure=True, HTTP_HOST="shop.example")

    link = referral_link(request, member)

    assert link == f"https://shop.example/shop/?ref={member.referral_code}"


# Capturing the code and the device --------------------------------------------------


def anonymous_request(path="/shop/", **extra):
    request = RequestFactory().get(path, **extra)
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize(
    ("ref", "kept"),
    [
        ("ABCDEFGH", "ABCDEFGH"),
        (" abcdefgh ", "ABCDEFGH"),
        ("ABCDEFG", None),  # too short
        ("ABCDEFGHJ", None),  # too long
        ("ABCDEFG0", None),  # 0 is not in the alphabet
        ("<script>", None),
    ],
)
def test_before_view_keeps_only_a_code_of_the_right_shape(ref, kept):
    request = anonymous_request(data={"ref": ref})
    referral_capture.before_view(request)
    assert request.session.get(SESSION_KEY) == kept


def test_before_view_ignores_signed_in_shoppers_and_pages_without_a_code():
    request = anonymous_request()
    referral_capture.before_view(request)
    assert SESSION_KEY not in request.session

    request = anonymous_request(data={"ref": "ABCDEFGH"})
    request.user = new_member().user
    referral_capture.before_view(request)
    assert SESSION_KEY not in request.session


@pytest.mark.parametrize("secure", [False, True])
def test_after_response_gives_a_long_lived_httponly_device_cookie(secure):
    request = anonymous_request(secure=secure)
    response = referral_capture.after_response(request, HttpResponse())

    cookie = response.cookies[DEVICE_COOKIE]
    assert len(cookie.value) == 32
    assert referrals.clean_device(cookie.value) == cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert bool(cookie["secure"]) is secure
    assert cookie["max-age"] == referral_capture.DEVICE_COOKIE_MAX_AGE
    assert not MemberDevice.objects.exists()  # nobody signed in


def test_after_response_keeps_a_device_cookie_and_replaces_a_forged_one():
    request = anonymous_request()
    request.COOKIES[DEVICE_COOKIE] = "x" * 32
    assert (
        DEVICE_COOKIE
        not in referral_capture.after_response(request, HttpResponse()).cookies
    )

    request.COOKIES[DEVICE_COOKIE] = "not a token; of ours"
    response = referral_capture.after_response(request, HttpResponse())
    assert response.cookies[DEVICE_COOKIE].value != request.COOKIES[DEVICE_COOKIE]

    again = referral_capture.after_response(request, response)  # a second call
    assert again.cookies[DEVICE_COOKIE].value == response.cookies[DEVICE_COOKIE].value


def test_a_members_device_is_recorded_when_they_sign_in_and_pages_cost_nothing(
    client,
):
    member = new_member()
    sign_in(client, member)
    device = MemberDevice.objects.get()
    assert (device.member, device.device) == (
        member,
        client.cookies[DEVICE_COOKIE].value,
    )

    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("catalogue:index"))
    assert not [q for q in queries if "memberdevice" in q["sql"]]


def test_remembering_a_device_twice_keeps_one_row_with_the_last_visit():
    member = new_member()
    first = timezone.now() - timedelta(days=3)
    referrals.remember_device(member, "e" * 32, now=first)
    referrals.remember_device(member, "e" * 32)
    assert referrals.remember_device(member, "bad device!") is None

    device = MemberDevice.objects.get()
    assert device.seen_at > first


# The happy path, through Oscar ------------------------------------------------------


def test_a_friend_who_signs_up_through_the_link_and_orders_rewards_both(
    client, rules, product
):
    referrer = new_member()
    place_order_to(signed_in(referrer), product, REFERRER_ADDRESS)

    link = follow_link(client, referrer)
    assert link.endswith(f"/shop/?ref={referrer.referral_code}")
    assert client.session[SESSION_KEY] == referrer.referral_code
    device = client.cookies[DEVICE_COOKIE].value
    friend = register(client, "friend@example.com")

    referral = Referral.objects.get()
    assert (referral.referrer, referral.referred, referral.status) == (
        referrer,
        friend,
        Status.PENDING,
    )
    assert referral.device == device
    assert SESSION_KEY not in client.session  # used once
    assert MemberDevice.objects.filter(member=friend, device=device).exists()

    order = place_order(client, product)
    assert reward_confirmed_referrals() == NOTHING  # not confirmed yet
    advance(order, "Being processed", "Shipped")
    assert reward_confirmed_referrals() == NOTHING

    advance(order, "Complete")
    assert reward_confirmed_referrals() == {"rewarded": 1, "refused": 0}

    referral.refresh_from_db()
    assert (referral.status, referral.order_number, referral.reason) == (
        Status.REWARDED,
        order.number,
        "",
    )
    assert referral.decided_at is not None
    assert awarded(referrer) == {"referrer": 300}
    assert awarded(friend) == {"referred": 200}
    assert ActionAward.objects.get(member=referrer).key == (
        f"referral:{referral.pk}:referrer"
    )
    assert reward_confirmed_referrals() == NOTHING
    assert points(friend) == 200 + 50  # and the order's own points


def test_the_sweep_task_runs_the_service(client, rules, product):
    referrer = new_member()
    follow_link(client, referrer)
    register(client, "friend@example.com")
    complete(place_order(client, product))

    result = action_tasks.reward_confirmed_referrals.delay().get()

    assert result == {"rewarded": 1, "refused": 0}


# Which order counts ----------------------------------------------------------------


@pytest.fixture
def friend(client, rules):
    """A friend of a referrer (with orders of their own), signed up through the
    link in ``client``: (referrer, friend)."""
    referrer = new_member()
    follow_link(client, referrer)
    return referrer, register(client, "friend@example.com")


def test_a_cancelled_first_order_earns_nothing_and_the_next_order_counts(
    client, friend, product
):
    referrer, friend = friend
    first = place_order(client, product)
    advance(first, "Cancelled")
    assert reward_confirmed_referrals() == NOTHING
    assert Referral.objects.get().status == Status.PENDING

    second = place_order(client, product)
    complete(second)

    assert reward_confirmed_referrals() == {"rewarded": 1, "refused": 0}
    assert Referral.objects.get().order_number == second.number
    assert awarded(referrer) == {"referrer": 300}


def test_a_refunded_first_order_earns_nothing(client, friend, product):
    first = place_order(client, product)
    complete(first)
    advance(first, "Refunded")  # before the sweep ran

    assert reward_confirmed_referrals() == NOTHING
    assert not ActionAward.objects.filter(action__startswith="referr").exists()


def test_a_later_order_confirmed_first_waits_for_the_first_order(
    client, friend, product
):
    first = place_order(client, product)
    second = place_order(client, product)
    complete(second)
    assert reward_confirmed_referrals() == NOTHING

    complete(first)

    assert reward_confirmed_referrals() == {"rewarded": 1, "refused": 0}
    assert Referral.objects.get().order_number == first.number


def test_the_return_window_confirms_the_first_order(client, friend, product, settings):
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = 14
    order = place_order(client, product)
    placed = order.date_placed

    assert reward_confirmed_referrals(placed + timedelta(days=13)) == NOTHING
    assert reward_confirmed_referrals(placed + timedelta(days=14)) == {
        "rewarded": 1,
        "refused": 0,
    }


def test_the_referrers_cap_limits_their_rewards_not_the_friends(rules, product):
    referrer_rule = rules[0]
    referrer_rule.cap, referrer_rule.cap_period = 1, ActionRule.Period.MONTH
    referrer_rule.save()
    referrer = new_member()
    friends = []
    for email in ("one@example.com", "two@example.com"):
        browser = Client()
        follow_link(browser, referrer)
        friends.append(register(browser, email))
        complete(place_order(browser, product))

    assert reward_confirmed_referrals() == {"rewarded": 2, "refused": 0}

    assert awarded(referrer) == {"referrer": 300}
    assert [awarded(friend) for friend in friends] == [{"referred": 200}] * 2
    assert set(Referral.objects.values_list("status", flat=True)) == {Status.REWARDED}


# Abuse -------------------------------------------------------------------------------


def refused_with(reason):
    referral = Referral.objects.get()
    assert (referral.status, referral.reason) == (Status.REFUSED, str(reason))
    assert referral.decided_at is not None
    assert not ActionAward.objects.filter(action__startswith="referr").exists()
    return referral


def test_signing_up_with_the_referrers_e_mail_is_refused(client, rules):
    referrer = new_member(email="wei.zhang@example.com")
    follow_link(client, referrer)

    register(client, "Wei.Zhang+again@Example.COM")

    refused_with(referrals.SAME_EMAIL)
    assert reward_confirmed_referrals() == NOTHING


def test_signing_up_on_the_referrers_own_browser_is_refused(client, rules, product):
    referrer = new_member()
    sign_in(client, referrer)  # the referrer's device is recorded
    client.get(reverse("customer:logout"))  # a real browser keeps its cookies

    follow_link(client, referrer)
    friend = register(client, "second-me@example.com")

    referral = refused_with(referrals.REFERRER_DEVICE)
    assert referral.referred == friend
    complete(place_order(client, product))
    assert reward_confirmed_referrals() == NOTHING


def test_the_same_phone_as_the_referrer_is_refused_at_the_first_order(
    client, friend, product
):
    referrer, friend = friend
    place_order_to(signed_in(referrer), product, REFERRER_ADDRESS)
    elsewhere = {
        **SHIPPING_ADDRESS,
        "line1": "1 Century Avenue",
        "postcode": "200120",
        "phone_number": REFERRER_ADDRESS["phone_number"],
    }
    order = place_order_to(client, product, elsewhere)
    complete(order)

    assert reward_confirmed_referrals() == {"rewarded": 0, "refused": 1}

    referral = refused_with(referrals.SAME_PHONE)
    assert referral.order_number == order.number


def test_the_same_address_as_the_referrer_is_refused_at_the_first_order(
    client, friend, product
):
    referrer, friend = friend
    place_order_to(signed_in(referrer), product, REFERRER_ADDRESS)
    same_flat = {
        **SHIPPING_ADDRESS,
        "line1": "12, HUAIHAI MIDDLE ROAD.",
        "postcode": "200 021",
    }
    complete(place_order_to(client, product, same_flat))

    assert reward_confirmed_referrals() == {"rewarded": 0, "refused": 1}
    refused_with(referrals.SAME_ADDRESS)


def test_the_referrers_saved_address_counts_too(client, friend, product):
    referrer, friend = friend
    UserAddress.objects.create(
        user=referrer.user,
        first_name="Wei",
        last_name="Zhang",
        line1=SHIPPING_ADDRESS["line1"],
        line4="Shanghai",
        postcode=SHIPPING_ADDRESS["postcode"],
        country=Country.objects.get(iso_3166_1_a2="CN"),
    )
    complete(place_order(client, product))

    assert reward_confirmed_referrals() == {"rewarded": 0, "refused": 1}
    refused_with(referrals.SAME_ADDRESS)


def test_a_friend_signing_in_on_the_referrers_browser_later_is_refused(
    client, friend, product
):
    referrer, friend = friend
    referrers_browser = sign_in(Client(), referrer)
    referrers_browser.get(reverse("customer:logout"))
    sign_in(referrers_browser, friend)
    complete(place_order(client, product))

    assert reward_confirmed_referrals() == {"rewarded": 0, "refused": 1}
    refused_with(referrals.SHARED_DEVICE)


def test_a_loop_is_refused():
    wei, mei = new_member(), new_member()
    first = attach_referral(mei, referral_code(wei))
    assert first.status == Status.PENDING

    loop = attach_referral(wei, referral_code(mei))

    assert (loop.status, loop.reason) == (Status.REFUSED, str(referrals.LOOP))
    assert (loop.referrer, loop.referred) == (mei, wei)


def test_a_repeat_account_from_the_same_browser_is_refused_the_first_is_not(
    client, rules, product
):
    referrer, other_referrer = new_member(), new_member()
    follow_link(client, referrer)
    first = register(client, "first@example.com")
    first_order = place_order(client, product)
    client.get(reverse("customer:logout"))

    follow_link(client, other_referrer)
    second = register(client, "second@example.com")

    repeat = Referral.objects.get(referred=second)
    assert (repeat.status, repeat.reason) == (
        Status.REFUSED,
        str(referrals.REPEAT_ACCOUNT),
    )
    complete(first_order)
    assert reward_confirmed_referrals() == {"rewarded": 1, "refused": 0}
    assert Referral.objects.get(referred=first).status == Status.REWARDED
    assert awarded(referrer) == {"referrer": 300}
    assert awarded(other_referrer) == {}


def test_codes_that_cannot_refer_write_nothing():
    referrer, friend = new_member(), new_member()
    code = referral_code(referrer)

    assert attach_referral(friend, "ZZZZZZZZ") is None  # nobody's code
    assert attach_referral(friend, "not a code") is None
    assert attach_referral(referrer, code) is None  # their own
    assert not Referral.objects.exists()

    referral = attach_referral(friend, f" {code.lower()} ")
    assert referral.referrer == referrer
    assert attach_referral(friend, referral_code(new_member())) is None  # again
    assert Referral.objects.count() == 1


def test_a_registration_with_an_unknown_code_still_signs_up(client, rules):
    session = client.session
    session[SESSION_KEY] = "ZZZZZZZZ"
    session.save()

    member = register(client, "lost@example.com")

    assert member.user.is_active
    assert not Referral.objects.exists()
    assert SESSION_KEY not in client.session


# Cost -----------------------------------------------------------------------------


def refused_referrals(count):
    """``count`` referrals whose friend shares the referrer's saved address and
    whose first order is confirmed (rows written directly: only the sweep's reads
    are measured)."""
    cn = Country.objects.get(iso_3166_1_a2="CN")
    for index in range(count):
        referrer, friend = new_member(), new_member()
        for member in (referrer, friend):
            UserAddress.objects.create(
                user=member.user,
                first_name="Mei",
                last_name="Lin",
                line1=f"{index} Shared Road",
                line4="Shanghai",
                postcode="200000",
                country=cn,
            )
        Referral.objects.create(referrer=referrer, referred=friend)
        OrderActivity.objects.create(
            member=friend,
            order_number=f"X{friend.pk}",
            placed_at=timezone.now(),
            spend=Decimal("10"),
            confirmed_at=timezone.now(),
        )


def test_refusing_costs_the_same_queries_for_two_or_twenty_referrals(rules):
    refused_referrals(2)
    with CaptureQueriesContext(connection) as two:
        assert reward_confirmed_referrals() == {"rewarded": 0, "refused": 2}
    refused_referrals(20)
    with CaptureQueriesContext(connection) as twenty:
        assert reward_confirmed_referrals() == {"rewarded": 0, "refused": 20}
    assert len(twenty) == len(two)


# Concurrency (PostgreSQL) ---------------------------------------------------------


def sweep():
    return reward_confirmed_referrals()


def code_of(member_id):
    return referral_code(Member.objects.get(pk=member_id))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_reward_each_referral_once(rules):
    pairs = []
    for _ in range(5):
        referrer, friend = new_member(), new_member()
        Referral.objects.create(referrer=referrer, referred=friend)
        OrderActivity.objects.create(
            member=friend,
            order_number=f"C{friend.pk}",
            placed_at=timezone.now(),
            spend=Decimal("10"),
            confirmed_at=timezone.now(),
        )
        pairs.append((referrer, friend))

    outcomes = run_in_processes(sweep, 3)

    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    assert sum(outcome.value["rewarded"] for outcome in outcomes) == 5
    assert ActionAward.objects.count() == 10
    for referrer, friend in pairs:
        assert (points(referrer), points(friend)) == (300, 200)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_drawing_a_code_twice_at_once_gives_one_code(db):
    member = new_member()

    outcomes = run_in_processes(code_of, 4, args=(member.pk,))

    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    assert len({outcome.value for outcome in outcomes}) == 1
    assert Member.objects.get(pk=member.pk).referral_code == outcomes[0].value


def test_a_repeat_account_signing_in_later_on_a_referred_friends_browser_is_refused(
    client, rules, product
):
    referrer = new_member()
    follow_link(client, referrer)
    first = register(client, "first@example.com")
    complete(place_order(client, product))
    client.get(reverse("customer:logout"))

    private_window = Client()
    follow_link(private_window, referrer)
    second = register(private_window, "second@example.com")
    complete(place_order(private_window, product))
    sign_in(client, second)  # back on the first friend's browser

    assert reward_confirmed_referrals() == {"rewarded": 1, "refused": 1}
    assert Referral.objects.get(referred=first).status == Status.REWARDED
    repeat = Referral.objects.get(referred=second)
    assert repeat.reason == str(referrals.REPEAT_ACCOUNT)
