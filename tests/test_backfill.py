"""Installing the programme into a shop that already has customers and orders."""

import pytest
from django.core.management import CommandError, call_command
from django.db.models import signals
from oscar.apps.order.signals import order_placed, order_status_changed
from oscar.core.loading import get_model

from oscar_loyalty import receivers
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import Lot, Member
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

Quantity = get_model("order", "PaymentEventQuantity")


RECEIVERS = [
    (order_placed, receivers.award_points_for_order, {}),
    (order_status_changed, receivers.follow_order_status, {}),
    (signals.post_save, receivers.reverse_refunded_line, {"sender": Quantity}),
]


@pytest.fixture
def shop_before_the_plugin(client):
    """Orders placed before the plugin was installed: its receivers disconnected."""
    CountryFactory()
    for signal, function, extra in RECEIVERS:
        assert signal.disconnect(dispatch_uid=_uid(function), **extra)
    try:
        shopper = UserFactory()
        client.force_login(shopper)
        done = place_order(client, ProductFactory())
        for status in ("Being processed", "Shipped", "Complete"):
            done.set_status(status)
        place_order(client, ProductFactory(), quantity=2)
        cancelled = place_order(client, ProductFactory())
        cancelled.set_status("Cancelled")
        Member.objects.all().delete()  # created on sign-up: not there before either
    finally:
        for signal, function, extra in RECEIVERS:
            signal.connect(function, dispatch_uid=_uid(function), **extra)
    return shopper, done, cancelled


def _uid(function):
    return {
        "award_points_for_order": "oscar_loyalty.award_order",
        "follow_order_status": "oscar_loyalty.order_status_changed",
        "reverse_refunded_line": "oscar_loyalty.refund_line",
    }[function.__name__]


def test_backfill_creates_members_and_awards_past_orders_once(shop_before_the_plugin):
    shopper, done, cancelled = shop_before_the_plugin
    UserFactory()  # a customer with no orders still becomes a member

    call_command("loyalty_backfill", "--award-orders")
    call_command("loyalty_backfill", "--award-orders")

    member = Member.objects.get(user=shopper)
    assert member.channel == Member.Channel.BACKFILL
    assert Member.objects.count() == 2
    assert (member.available, member.pending) == (88, 176)
    assert not Lot.objects.filter(order_number=cancelled.number).exists()
    assert Lot.objects.get(order_number=done.number).status == Lot.Status.ACTIVE
    assert find_drift() == []


def test_backfill_in_workers_sends_order_ranges_that_award_once(
    shop_before_the_plugin,
):
    from io import StringIO

    from oscar_loyalty import tasks

    shopper, _done, _cancelled = shop_before_the_plugin
    # The test settings run tasks eagerly (the embedded default), so the ranges
    # sent to "the workers" are awarded before the command returns.
    out = StringIO()

    call_command("loyalty_backfill", "--award-orders", "--in-workers", stdout=out)
    call_command("loyalty_backfill", "--award-orders", "--in-workers", stdout=out)

    assert "Order ranges sent to the Celery workers: 1" in out.getvalue()
    member = Member.objects.get(user=shopper)
    assert (member.available, member.pending) == (88, 176)
    assert tasks.backfill_ranges(chunk=1) == [
        (pk, pk + 1)
        for pk in range(tasks.backfill_ranges()[0][0], tasks.backfill_ranges()[0][1])
    ]
    assert find_drift() == []


def test_backfill_without_award_creates_members_only(shop_before_the_plugin):
    call_command("loyalty_backfill")

    assert Member.objects.count() == 1
    assert not Lot.objects.exists()


def test_backfill_refuses_a_malformed_date(db):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("loyalty_backfill", "--award-orders", "--since", "23/11/2026")


def test_a_new_customer_becomes_a_member_on_registration(client):
    response = client.post(
        "/shop/accounts/login/",
        {
            "registration-email": "new@example.com",
            "registration-password1": "a long and unusual password 42",
            "registration-password2": "a long and unusual password 42",
            "registration_submit": "Register",
        },
    )

    assert response.status_code == 302
    member = Member.objects.get(user__email="new@example.com")
    assert member.number.startswith("M") and len(member.number) == 11
