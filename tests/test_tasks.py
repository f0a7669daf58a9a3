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
