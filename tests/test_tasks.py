"""The periodic tasks, run eagerly as the embedded default does."""

from datetime import timedelta

import pytest
from django.utils import timezone

from oscar_loyalty import tasks
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import Hold, Lot, Member
from oscar_loyalty.services import holds, ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def confirmed_points(member, points, *, confirmed_days_ago, key):
    past = timezone.now() - timedelta(days=confirmed_days_ago)
    ledger.earn(member=member, key=key, points=points, now=past)
    ledger.confirm_lot(lot=Lot.objects.get(entries__posting__key=key), now=past)


def test_expiry_task_expires_only_lots_past_their_date_in_chunks(settings):
    settings.OSCAR_LOYALTY_EXPIRY_MONTHS = 12
    member = get_or_create_member(UserFactory())
    confirmed_points(member, 30, confirmed_days_ago=400, key="old")
    confirmed_points(member, 50, confirmed_days_ago=10, key="new")

    chunks = tasks.expire_points()
    tasks.expire_points()  # a double beat changes nothing

    member.refresh_from_db()
    assert chunks == 1
    assert member.available == 50
    assert Lot.objects.filter(status=Lot.Status.EXPIRED).count() == 1
    assert find_drift() == []


def test_stale_holds_are_released_by_the_task(settings):
    settings.OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES = 30
    member = get_or_create_member(UserFactory())
    confirmed_points(member, 100, confirmed_days_ago=1, key="e")
    holds.hold_points(
        member=member, basket_id=1, points=40, now=timezone.now() - timedelta(hours=1)
    )
    holds.hold_points(member=member, basket_id=2, points=10)

    assert tasks.release_stale_holds() == 1

    member.refresh_from_db()
    assert member.held == 10
    assert Hold.objects.get(basket_id=1).status == Hold.Status.RELEASED
    assert find_drift() == []


def test_orders_missed_by_the_receiver_are_awarded_by_the_task(client):
    from oscar.apps.order.signals import order_placed

    from oscar_loyalty import receivers
    from tests.checkout import place_order
    from tests.factories import CountryFactory, ProductFactory

    CountryFactory()
    shopper = UserFactory()
    client.force_login(shopper)
    order_placed.disconnect(dispatch_uid="oscar_loyalty.award_order")
    try:
        place_order(client, ProductFactory())
    finally:
        order_placed.connect(
            receivers.award_points_for_order, dispatch_uid="oscar_loyalty.award_order"
        )

    assert tasks.award_missed_orders() == 88
    assert tasks.award_missed_orders() == 0
    assert Member.objects.get(user=shopper).pending == 88


def test_status_changes_missed_by_the_receiver_are_followed_by_the_task(client):
    from oscar.apps.order.signals import order_status_changed

    from oscar_loyalty import receivers
    from oscar_loyalty.redemption import ensure_points_offer
    from tests.checkout import place_order
    from tests.factories import CountryFactory, ProductFactory

    ensure_points_offer()
    CountryFactory()
    shopper = UserFactory()
    member = get_or_create_member(shopper)
    ledger.adjust(member=member, points=1000, reason="gift", actor=ledger.SYSTEM)
    client.force_login(shopper)
    completed = place_order(client, ProductFactory())
    cancelled = place_order(client, ProductFactory())
    ledger.redeem(
        member=member,
        points=100,
        key="redeem:" + cancelled.number,
        order_number=cancelled.number,
    )

    order_status_changed.disconnect(dispatch_uid="oscar_loyalty.order_status_changed")
    try:
        completed.set_status("Being processed")
        completed.set_status("Shipped")
        completed.set_status("Complete")
        cancelled.set_status("Cancelled")
    finally:
        order_status_changed.connect(
            receivers.follow_order_status,
            dispatch_uid="oscar_loyalty.order_status_changed",
        )
    member.refresh_from_db()
    assert member.pending == 176

    assert tasks.follow_missed_status_changes() == 2
    assert tasks.follow_missed_status_changes() == 0
    member.refresh_from_db()
    assert (member.available, member.pending) == (1088, 0)
    assert find_drift() == []
