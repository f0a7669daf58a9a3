"""Earning points on orders placed through Oscar's real checkout, and what follows."""

from decimal import Decimal

import pytest
from oscar.apps.order.signals import order_placed
from oscar.core.loading import get_class, get_model

from oscar_loyalty import earning
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import Lot, Member, Posting
from oscar_loyalty.services import orders
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

EventHandler = get_class("order.processing", "EventHandler")
PaymentEventType = get_model("order", "PaymentEventType")


@pytest.fixture
def shopper(client):
    CountryFactory()
    user = UserFactory()
    client.force_login(user)
    return user


def balances(user):
    member = Member.objects.get(user=user)
    return member.available, member.pending, member.lifetime_earned


def advance(order, *statuses):
    for status in statuses:
        order.set_status(status)


def test_an_order_earns_pending_points_per_line_at_once(client, shopper):
    tea = ProductFactory(stockrecord__price=Decimal("88.50"))
    cup = ProductFactory(stockrecord__price=Decimal("39.90"))

    order = place_order(client, tea, quantity=2)
    second = place_order(client, cup)

    assert balances(shopper) == (0, 177 + 39, 177 + 39)
    lots = Lot.objects.filter(order_number=order.number)
    assert [(lot.order_line_id, lot.points, lot.rule) for lot in lots] == [
        (order.lines.get().pk, 177, earning.BASE_RULE)
    ]
    assert Lot.objects.get(order_number=second.number).points == 39
    assert find_drift() == []


def test_order_placed_sent_twice_awards_once(client, shopper):
    order = place_order(client, ProductFactory())

    order_placed.send(sender=object(), order=order, user=shopper)

    assert balances(shopper) == (0, 88, 88)
    assert Posting.objects.filter(kind=Posting.Kind.EARN).count() == 1


def test_completing_the_order_confirms_its_points_with_an_expiry(client, shopper):
    order = place_order(client, ProductFactory())

    advance(order, "Being processed", "Shipped", "Complete")

    assert balances(shopper) == (88, 0, 88)
    lot = Lot.objects.get(order_number=order.number)
    assert lot.status == Lot.Status.ACTIVE
    assert lot.expires_at.year == lot.confirmed_at.year + 1
    assert find_drift() == []


def test_cancelling_a_pending_order_reverses_its_points(client, shopper):
    order = place_order(client, ProductFactory())

    advance(order, "Cancelled")

    assert balances(shopper) == (0, 0, 0)
    assert Lot.objects.get(order_number=order.number).status == Lot.Status.REVERSED
    assert find_drift() == []


def test_refunding_a_completed_order_takes_its_points_back(client, shopper):
    order = place_order(client, ProductFactory())
    advance(order, "Being processed", "Shipped", "Complete")

    advance(order, "Refunded")
    orders.order_status_changed(order, "Refunded")  # the same status twice

    assert balances(shopper) == (0, 0, 0)
    assert Posting.objects.filter(kind=Posting.Kind.REVERSE).count() == 1
    assert find_drift() == []


def test_partial_refunds_reverse_each_lines_share_and_add_up(client, shopper):
    order = place_order(client, ProductFactory(), quantity=3)
    advance(order, "Being processed", "Shipped", "Complete")
    line = order.lines.get()
    refund, _ = PaymentEventType.objects.get_or_create(
        code="refund", defaults={"name": "Refund"}
    )
    handler = EventHandler()

    handler.create_payment_event(order, refund, Decimal("88.00"), [line], [1])
    assert balances(shopper) == (264 - 88, 0, 264 - 88)

    handler.create_payment_event(order, refund, Decimal("176.00"), [line], [2])
    assert balances(shopper) == (0, 0, 0)
    assert find_drift() == []


def test_a_payment_event_that_is_not_a_refund_changes_no_points(client, shopper):
    order = place_order(client, ProductFactory())
    settled, _ = PaymentEventType.objects.get_or_create(
        code="settled", defaults={"name": "Settled"}
    )

    EventHandler().create_payment_event(
        order, settled, Decimal("88.00"), [order.lines.get()], [1]
    )

    assert balances(shopper) == (0, 88, 88)


def test_orders_below_the_owners_minimum_earn_nothing(client, shopper, settings):
    settings.OSCAR_LOYALTY_EARN_MINIMUM_ORDER = "100"

    place_order(client, ProductFactory())

    assert not Member.objects.filter(user=shopper, pending__gt=0).exists()


def test_the_owners_rate_rounding_and_tax_choice_apply(settings):
    settings.OSCAR_LOYALTY_EARN_RATE = "1.5"
    assert earning.points_for_amount(Decimal("9.99")) == 14
    settings.OSCAR_LOYALTY_EARN_ROUNDING = "round"
    assert earning.points_for_amount(Decimal("9.99")) == 15
    settings.OSCAR_LOYALTY_EARN_ROUNDING = "ceil"
    assert earning.points_for_amount(Decimal("9.01")) == 14
    settings.OSCAR_LOYALTY_EARN_INCLUDES_TAX = True
    lines = earning.order_line_points(
        [(1, Decimal("10"), Decimal("11.30"))], order_total=Decimal("11.30")
    )
    assert [line.points for line in lines] == [17]


def test_refund_shares_add_up_to_what_the_line_earned():
    shares = [earning.refund_share(100, 3, before, 1) for before in range(3)]
    assert shares == [33, 33, 34]
    assert earning.refund_share(100, 3, 0, 5) == 100


def test_awarding_an_order_costs_the_same_queries_for_a_long_history(
    client, shopper, django_assert_max_num_queries
):
    order = place_order(client, ProductFactory(), quantity=2)
    member = Member.objects.get(user=shopper)
    # Re-award into a fresh order number: same lines, new keys.
    order.number = "HISTORY-1"
    with django_assert_max_num_queries(10):
        orders.award_order(order)
    for index in range(200):
        orders.earn_lines(
            member=member,
            order_number=f"OLD-{index}",
            lines=[earning.LinePoints(index, 5, earning.BASE_RULE, 0)],
            now=order.date_placed,
        )
    order.number = "HISTORY-2"
    with django_assert_max_num_queries(10):
        orders.award_order(order)
    assert find_drift() == []
