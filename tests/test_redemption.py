"""Paying with points at checkout, through Oscar's real basket and checkout views.

The shopper applies points on the basket page; the programme's SITE offer turns
the hold into money off in Oscar's totals; placing the order captures the hold in
the order's own transaction. Every refusal leaves the balance and holds as they
were.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import InvalidPoints
from oscar_loyalty.jobs import release_stale_holds
from oscar_loyalty.models import Hold, Member, Posting
from oscar_loyalty.redemption import (
    Policy,
    UnableToPlaceOrder,
    capture_for_order,
    parse_points,
)
from oscar_loyalty.services import ledger, orders
from oscar_loyalty.services.holds import capture_basket, hold_points
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import SHIPPING_ADDRESS, add_to_basket
from tests.factories import CountryFactory, ProductFactory, StaffFactory, UserFactory

Order = get_model("order", "Order")
Basket = get_model("basket", "Basket")

APPLY = "loyalty:apply-points"
REMOVE = "loyalty:remove-points"


@pytest.fixture(autouse=True)
def redemption_policy(settings):
    settings.OSCAR_LOYALTY_REDEEM_POINT_VALUE = "0.01"
    settings.OSCAR_LOYALTY_REDEEM_MINIMUM_BALANCE = 500
    settings.OSCAR_LOYALTY_REDEEM_MAX_SHARE = "0.5"
    settings.OSCAR_LOYALTY_REDEEM_STEP = 100


@pytest.fixture
def shopper(db):
    CountryFactory()
    return UserFactory()


@pytest.fixture
def member(shopper):
    member = get_or_create_member(shopper)
    ledger.adjust(
        member=member,
        points=8000,
        reason="Welcome gift",
        actor=ledger.Actor(id=None, name="test"),
    )
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def product(db):
    return ProductFactory(title="Da Hong Pao", stockrecord__price=Decimal("100.00"))


@pytest.fixture
def signed_in(client, shopper):
    client.force_login(shopper)
    return client


def balances(member):
    member.refresh_from_db()
    return member.available, member.held, member.pending


def active_holds():
    return list(
        Hold.objects.filter(status=Hold.Status.ACTIVE).values_list(
            "basket_id", "points"
        )
    )


def apply(client, points, **extra):
    return client.post(reverse(APPLY), {"points": points, **extra}, follow=True)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def change_line(client, line, *, quantity, delete=False):
    """Change one basket line through Oscar's basket page formset."""
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": line.id,
        "form-0-quantity": str(quantity),
    }
    if delete:
        data["form-0-DELETE"] = "on"
    return client.post(reverse("basket:summary"), data)


def checkout(client):
    response = client.post(
        reverse("checkout:shipping-address"), SHIPPING_ADDRESS, follow=True
    )
    assert response.status_code == 200
    return client.post(reverse("checkout:preview"), {"action": "place_order"})


# -- the owner's limits (pure) ------------------------------------------------


def test_the_policy_values_points_in_whole_cents_and_caps_them_by_share_and_step():
    policy = Policy(
        point_value=Decimal("0.01"),
        minimum_balance=500,
        max_share=Decimal("0.5"),
        step=100,
    )
    assert policy.value_of(1234) == Decimal("12.34")
    assert policy.points_for(Decimal("49.99")) == 4900
    assert policy.usable(8000, Decimal("100.00")) == 5000
    assert policy.usable(3050, Decimal("100.00")) == 3000
    assert policy.usable(8000, Decimal("1.50")) == 0


@pytest.mark.parametrize(
    "raw", ["", " ", "abc", "-100", "1.5", "1e3", "0", "+100", "10" * 10, None]
)
def test_points_from_a_form_must_be_a_whole_positive_number(raw):
    with pytest.raises(InvalidPoints):
        parse_points(raw)


def test_points_from_a_form_may_carry_thousands_separators():
    assert parse_points(" 1,000 ") == 1000


# -- applying on the basket page ---------------------------------------------


@pytest.mark.django_db
def test_applied_points_are_money_off_in_the_basket_totals(signed_in, member, product):
    add_to_basket(signed_in, product)

    response = apply(signed_in, "3000", next=reverse("basket:summary"))

    assert response.status_code == 200
    assert "3000 points applied" in " ".join(messages_of(response))
    basket = response.context["basket"]
    assert basket.total_excl_tax == Decimal("70.00")
    assert [d["name"] for d in basket.offer_discounts] == ["Points"]
    assert balances(member) == (8000, 3000, 0)
    assert active_holds() == [(basket.id, 3000)]
    page = response.content.decode()
    assert 'id="loyalty-remove-points"' in page


@pytest.mark.django_db
def test_the_basket_page_offers_the_most_the_basket_takes(signed_in, member, product):
    add_to_basket(signed_in, product)

    page = signed_in.get(reverse("basket:summary")).content.decode()

    assert "8000 points" in page  # to spend
    assert 'max="5000"' in page  # half of 100.00 at 0.01 a point
    assert "This order earns 100 points." in page


@pytest.mark.django_db
def test_more_points_than_the_share_allows_are_cut_and_the_shopper_told(
    signed_in, member, product
):
    add_to_basket(signed_in, product)

    response = apply(signed_in, "8000")

    assert any("at most 5000 points" in m for m in messages_of(response))
    assert balances(member) == (8000, 5000, 0)


@pytest.mark.django_db
def test_all_applies_the_most_the_basket_takes(signed_in, member, product):
    add_to_basket(signed_in, product, quantity=3)  # 300.00: cap 15000 > 8000

    apply(signed_in, "all")

    assert balances(member) == (8000, 8000, 0)


@pytest.mark.django_db
def test_applying_again_replaces_the_amount_and_a_replayed_post_changes_nothing(
    signed_in, member, product
):
    add_to_basket(signed_in, product)
    apply(signed_in, "2000")
    apply(signed_in, "1000")
    apply(signed_in, "1000")

    assert balances(member) == (8000, 1000, 0)
    assert len(active_holds()) == 1
    assert find_drift() == []


@pytest.mark.django_db
def test_removing_points_gives_them_back_at_once(signed_in, member, product):
    add_to_basket(signed_in, product)
    apply(signed_in, "2000")

    response = signed_in.post(reverse(REMOVE), follow=True)

    assert "2000 points are back" in " ".join(messages_of(response))
    assert balances(member) == (8000, 0, 0)
    assert response.context["basket"].total_excl_tax == Decimal("100.00")


# -- bad input: a clear message, nothing changes ------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("points", "message"),
    [
        ("abc", "whole number of points"),
        ("-100", "whole number of points"),
        ("1.5", "whole number of points"),
        ("0", "whole number of points"),
        ("", "whole number of points"),
        ("150", "multiples of 100"),
        ("9000", "fewer than the 9000"),
    ],
)
def test_bad_amounts_are_refused_with_a_message(
    signed_in, member, product, points, message
):
    add_to_basket(signed_in, product)

    response = apply(signed_in, points)

    assert any(message in m for m in messages_of(response)), messages_of(response)
    assert balances(member) == (8000, 0, 0)
    assert active_holds() == []


@pytest.mark.django_db
def test_a_balance_below_the_minimum_cannot_be_spent(signed_in, shopper, product):
    member = get_or_create_member(shopper)
    ledger.adjust(
        member=member, points=400, reason="r", actor=ledger.Actor(None, "test")
    )
    add_to_basket(signed_in, product)

    response = apply(signed_in, "400")

    assert any("at least 500 points" in m for m in messages_of(response))
    assert active_holds() == []


@pytest.mark.django_db
def test_points_cannot_be_applied_to_an_empty_basket(signed_in, member):
    response = apply(signed_in, "1000")

    assert any("basket is empty" in m for m in messages_of(response))
    assert active_holds() == []


@pytest.mark.django_db
def test_a_basket_too_small_for_one_step_is_refused(signed_in, member):
    cheap = ProductFactory(stockrecord__price=Decimal("1.50"))
    add_to_basket(signed_in, cheap)

    response = apply(signed_in, "100")

    assert any("too small" in m for m in messages_of(response))
    assert active_holds() == []


@pytest.mark.django_db
def test_a_form_cannot_name_another_members_basket(client, member, product):
    owner_client = client
    owner_client.force_login(member.user)
    add_to_basket(owner_client, product)
    apply(owner_client, "1000")
    victim_basket = Basket.objects.get(owner=member.user)

    intruder = UserFactory()
    other = get_or_create_member(intruder)
    ledger.adjust(member=other, points=5000, reason="r", actor=ledger.Actor(None, "t"))
    owner_client.logout()
    owner_client.force_login(intruder)
    response = owner_client.post(
        reverse(APPLY),
        {"points": "1000", "basket_id": victim_basket.id, "basket": victim_basket.id},
        follow=True,
    )
    owner_client.post(reverse(REMOVE), {"basket_id": victim_basket.id})

    assert any("basket is empty" in m for m in messages_of(response))
    assert active_holds() == [(victim_basket.id, 1000)]
    assert balances(member) == (8000, 1000, 0)


@pytest.mark.django_db
def test_applying_needs_a_signed_in_shopper_and_a_post(client, signed_in, member):
    assert signed_in.get(reverse(APPLY)).status_code == 405
    signed_in.logout()
    response = client.post(reverse(APPLY), {"points": "1000"})
    assert response.status_code == 302
    assert reverse("customer:login") in response.url
    assert active_holds() == []


@pytest.mark.django_db
def test_an_offsite_next_address_is_not_followed(signed_in, member, product):
    add_to_basket(signed_in, product)

    response = signed_in.post(
        reverse(APPLY), {"points": "1000", "next": "https://evil.example/"}
    )

    assert response.url == reverse("basket:summary")


@pytest.mark.django_db
def test_guests_are_told_they_earn_and_spend_nothing(client, product):
    add_to_basket(client, product)

    page = client.get(reverse("basket:summary")).content.decode()

    assert "Guest orders do not earn points" in page
    assert "to earn 100 points on this order" in page


# -- placing the order --------------------------------------------------------


@pytest.mark.django_db
def test_the_order_captures_the_points_and_shows_the_discount(
    signed_in, member, product
):
    add_to_basket(signed_in, product)
    apply(signed_in, "3000")

    response = checkout(signed_in)

    assert response.status_code == 302, response
    order = Order.objects.get()
    assert order.total_excl_tax == Decimal("70.00")
    discount = order.discounts.get()
    assert discount.offer_name == "Points"
    assert discount.amount == Decimal("30.00")
    assert discount.message == "3000 points redeemed"
    redemption = Posting.objects.get(key=f"redeem:{order.number}")
    assert sum(e.available_change for e in redemption.entries.all()) == -3000
    # Earned on what was paid in money (70.00), pending until the order completes.
    assert balances(member) == (5000, 0, 70)
    assert Hold.objects.get().status == Hold.Status.CAPTURED
    assert find_drift() == []
    thanks = signed_in.get(reverse("checkout:thank-you")).content.decode()
    assert "Points" in thanks and "30.00" in thanks


@pytest.mark.django_db
def test_a_cancelled_order_gives_the_redeemed_points_back(signed_in, member, product):
    add_to_basket(signed_in, product)
    apply(signed_in, "3000")
    checkout(signed_in)
    order = Order.objects.get()

    orders.cancel_order(order_number=order.number)

    assert balances(member) == (8000, 0, 0)
    assert find_drift() == []


@pytest.mark.django_db
def test_a_shopper_back_after_the_timeout_finds_the_points_applied_again(
    signed_in, member, product
):
    add_to_basket(signed_in, product)
    apply(signed_in, "3000")
    Hold.objects.update(expires_at=timezone.now() - timedelta(minutes=1))

    release_stale_holds()

    assert balances(member) == (8000, 0, 0)  # free for other baskets meanwhile
    response = signed_in.get(reverse("basket:summary"))
    assert response.context["basket"].total_excl_tax == Decimal("70.00")
    assert balances(member) == (8000, 3000, 0)
    assert checkout(signed_in).status_code == 302
    assert Order.objects.get().total_excl_tax == Decimal("70.00")
    assert balances(member) == (5000, 0, 70)
    assert find_drift() == []


@pytest.mark.django_db
def test_points_spent_while_the_hold_was_gone_leave_the_basket_at_full_price(
    signed_in, member, product
):
    add_to_basket(signed_in, product)
    apply(signed_in, "3000")
    release_stale_holds(now=timezone.now() + timedelta(days=1))
    ledger.redeem(member=member, points=6000, key="elsewhere")

    response = signed_in.get(reverse("basket:summary"))

    assert response.context["basket"].total_excl_tax == Decimal("100.00")
    assert active_holds() == []
    assert hold_queries(signed_in, reverse("basket:summary")) == []  # hint dropped
    assert checkout(signed_in).status_code == 302
    assert balances(member) == (2000, 0, 100)


@pytest.mark.django_db
def test_a_capture_whose_hold_was_released_takes_points_still_spendable(member):
    posting = capture_basket(
        user_id=member.user_id, basket_id=4242, points=3000, order_number="100998"
    )

    assert posting.key == "redeem:100998"
    assert balances(member) == (5000, 0, 0)
    assert find_drift() == []


@pytest.mark.django_db
def test_points_spent_elsewhere_meanwhile_refuse_the_order_and_lose_nothing(member):
    hold_points(member=member, basket_id=4242, points=3000)
    release_stale_holds(now=timezone.now() + timedelta(days=1))
    ledger.redeem(member=member, points=6000, key="elsewhere")
    basket = Basket(id=4242, owner=member.user)
    basket._loyalty_points_used = 3000
    order = Order(number="100999", user=member.user)

    with pytest.raises(UnableToPlaceOrder):
        capture_for_order(basket, order, {"discount": Decimal("30.00")})

    assert balances(member) == (2000, 0, 0)
    assert not Posting.objects.filter(key="redeem:100999").exists()
    assert find_drift() == []


# -- a changed basket gives back what it cannot use ---------------------------


@pytest.mark.django_db
def test_a_smaller_basket_gives_back_the_points_it_no_longer_takes(
    signed_in, member, product, django_capture_on_commit_callbacks
):
    add_to_basket(signed_in, product, quantity=2)  # 200.00: takes up to 10000
    apply(signed_in, "8000")
    basket = Basket.objects.get(owner=member.user)
    line = basket.all_lines()[0]

    with django_capture_on_commit_callbacks(execute=True):
        change_line(signed_in, line, quantity=1)

    assert Basket.objects.get(pk=basket.pk).all_lines()[0].quantity == 1
    assert balances(member) == (8000, 5000, 0)
    assert active_holds() == [(basket.id, 5000)]


@pytest.mark.django_db
def test_an_emptied_basket_gives_all_its_points_back(
    signed_in, member, product, django_capture_on_commit_callbacks
):
    add_to_basket(signed_in, product)
    apply(signed_in, "3000")
    basket = Basket.objects.get(owner=member.user)
    line = basket.all_lines()[0]

    with django_capture_on_commit_callbacks(execute=True):
        change_line(signed_in, line, quantity=1, delete=True)

    assert Basket.objects.get(pk=basket.pk).is_empty
    assert balances(member) == (8000, 0, 0)
    assert active_holds() == []
    # The shopper took the points off by emptying the basket: a new product does
    # not bring them back.
    add_to_basket(signed_in, product)
    assert active_holds() == []


@pytest.mark.django_db
def test_the_discount_shows_in_the_order_history_and_the_dashboard_order_view(
    client, signed_in, member, product
):
    add_to_basket(signed_in, product)
    apply(signed_in, "3000")
    checkout(signed_in)
    order = Order.objects.get()

    history = signed_in.get(
        reverse("customer:order", kwargs={"order_number": order.number})
    ).content.decode()
    assert "Points" in history and "30.00" in history
    assert 'id="loyalty-order-points"' in history
    assert "-3000" in history and "+70 pending" in history

    signed_in.logout()
    client.force_login(StaffFactory(is_superuser=True))
    dashboard = client.get(
        reverse("dashboard:order-detail", kwargs={"number": order.number})
    ).content.decode()
    assert "3000 points redeemed" in dashboard


@pytest.mark.django_db
def test_a_capture_of_fewer_points_than_held_gives_the_rest_back(member):
    hold = hold_points(member=member, basket_id=4243, points=3000)

    capture_basket(
        user_id=member.user_id, basket_id=4243, points=2000, order_number="100997"
    )
    again = capture_basket(
        user_id=member.user_id, basket_id=4243, points=2000, order_number="100997"
    )

    assert again.key == "redeem:100997"
    hold.refresh_from_db()
    assert hold.status == Hold.Status.CAPTURED
    assert balances(member) == (6000, 0, 0)
    assert find_drift() == []


# -- the session hint: pages of shoppers who applied no points cost no query ------


def hold_queries(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [q for q in queries.captured_queries if "oscar_loyalty_hold" in q["sql"]]


@pytest.mark.django_db
def test_a_basket_without_points_costs_no_hold_query(signed_in, member, product):
    add_to_basket(signed_in, product)

    assert hold_queries(signed_in, reverse("basket:summary")) == []

    apply(signed_in, "1000")
    assert len(hold_queries(signed_in, reverse("basket:summary"))) == 1


@pytest.mark.django_db
def test_without_the_middleware_points_still_apply(
    settings, signed_in, member, product
):
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m != "oscar_loyalty.middleware.LoyaltyMiddleware"
    ]
    add_to_basket(signed_in, product)

    response = apply(signed_in, "1000")

    assert response.context["basket"].total_excl_tax == Decimal("90.00")
    assert len(hold_queries(signed_in, reverse("basket:summary"))) == 1


# -- holds stay while the shopper is at the checkout, and never outlive the order --


@pytest.mark.django_db
def test_a_shopper_still_at_the_checkout_keeps_the_hold_alive(
    signed_in, member, product
):
    add_to_basket(signed_in, product)
    apply(signed_in, "1000")
    soon = timezone.now() + timedelta(minutes=2)
    Hold.objects.update(expires_at=soon)

    signed_in.get(reverse("basket:summary"))

    assert Hold.objects.get().expires_at > soon + timedelta(minutes=10)
    release_stale_holds(now=soon + timedelta(minutes=1))
    assert balances(member) == (8000, 1000, 0)


@pytest.mark.django_db
def test_a_frozen_basket_keeps_its_hold_past_the_timeout_for_a_day(member):
    basket = Basket.objects.create(owner=member.user, status=Basket.FROZEN)
    hold_points(member=member, basket_id=basket.id, points=1000)
    later = timezone.now() + timedelta(hours=1)

    assert release_stale_holds(now=later) == 0
    assert balances(member) == (8000, 1000, 0)
    assert release_stale_holds(now=later + timedelta(days=1)) == 1
    assert balances(member) == (8000, 0, 0)
    assert find_drift() == []


@pytest.mark.django_db
def test_an_order_placed_without_the_points_gives_a_hidden_hold_back(
    signed_in, member, product
):
    add_to_basket(signed_in, product)
    basket = Basket.objects.get(owner=member.user)
    # Applied on another device: this session knows nothing of it, so its pages
    # price the basket without points and the order does not use them.
    hold_points(member=member, basket_id=basket.id, points=1000)

    assert checkout(signed_in).status_code == 302

    assert Order.objects.get().total_excl_tax == Decimal("100.00")
    assert active_holds() == []
    assert balances(member) == (8000, 0, 100)


@pytest.mark.django_db
def test_points_cannot_pay_for_someone_elses_order(member):
    basket = Basket(id=4244, owner=member.user)
    basket._loyalty_points_used = 1000
    stranger = Order(number="100996", user=UserFactory())

    with pytest.raises(UnableToPlaceOrder):
        capture_for_order(basket, stranger, {"discount": Decimal("10.00")})
    assert balances(member) == (8000, 0, 0)


@pytest.mark.django_db
def test_the_points_offer_gets_another_name_when_points_is_taken():
    from oscar_loyalty.redemption import ensure_points_offer, points_offer

    ConditionalOffer = get_model("offer", "ConditionalOffer")
    offer = points_offer()
    offer.delete()
    ConditionalOffer.objects.create(
        name="Points",
        offer_type=ConditionalOffer.SITE,
        condition=offer.condition,
        benefit=offer.benefit,
    )

    assert ensure_points_offer().name == "Points (loyalty programme)"


@pytest.mark.django_db
def test_points_cannot_be_applied_while_the_owner_has_switched_them_off(
    signed_in, member, product
):
    from oscar_loyalty.redemption import points_offer

    points_offer().suspend()
    add_to_basket(signed_in, product)

    response = apply(signed_in, "1000")

    assert any("switched off" in m for m in messages_of(response))
    assert active_holds() == []
