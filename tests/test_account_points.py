"""The Loyalty tab of the shopper's account: balances, expiry and history."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty.models import Member
from oscar_loyalty.services import ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

ACCOUNT = "loyalty:account"


def test_the_tab_shows_balances_expiry_and_every_entry_with_its_reason(client):
    CountryFactory()
    shopper = UserFactory()
    member = get_or_create_member(shopper)
    ledger.adjust(
        member=member,
        points=1200,
        reason="Sorry for the late parcel",
        actor=ledger.Actor(id=None, name="staff"),
        now=timezone.now() - timedelta(days=340),
    )
    client.force_login(shopper)
    order = place_order(client, ProductFactory(stockrecord__price=88))

    response = client.get(reverse(ACCOUNT))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="loyalty-account-tab"' in page
    assert response.context["member"].spendable == 1200
    assert response.context["member"].pending == 88
    assert "Sorry for the late parcel" in page
    assert order.number in page
    assert reverse("customer:order", kwargs={"order_number": order.number}) in page
    kinds = [p.kind for p in response.context["postings"]]
    assert kinds == ["earn", "adjust"]
    assert [p.pending_points for p in response.context["postings"]] == [88, 0]
    # Adjusted 340 days ago, so it expires within the next 90 days.
    assert [g["points"] for g in response.context["expiring"]] == [1200]
    assert "1200 points expire on" in page


def test_a_customer_from_before_the_programme_gets_an_account_on_first_visit(client):
    shopper = UserFactory()
    client.force_login(shopper)

    response = client.get(reverse(ACCOUNT))

    assert response.status_code == 200
    assert Member.objects.filter(user=shopper).exists()
    assert "No points yet" in response.content.decode()


def test_the_tab_is_only_for_signed_in_shoppers(client):
    response = client.get(reverse(ACCOUNT))

    assert response.status_code == 302
    assert reverse("customer:login") in response.url


def test_each_shopper_sees_only_their_own_points(client):
    mine, theirs = UserFactory(), UserFactory()
    ledger.adjust(
        member=get_or_create_member(theirs),
        points=500,
        reason="Their secret",
        actor=ledger.Actor(id=None, name="staff"),
    )
    client.force_login(mine)

    page = client.get(reverse(ACCOUNT), {"member": theirs.pk}).content.decode()

    assert "Their secret" not in page


def test_reminder_consent_is_given_and_withdrawn_by_post(client):
    shopper = UserFactory()
    client.force_login(shopper)
    url = reverse("loyalty:reminders")

    assert client.get(url).status_code == 405
    client.post(url, {"expiry_reminders": "on"})
    assert Member.objects.get(user=shopper).expiry_reminders is True
    client.post(url, {})
    assert Member.objects.get(user=shopper).expiry_reminders is False
