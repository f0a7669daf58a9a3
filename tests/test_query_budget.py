"""The plugin's SQL cost of placing an order through Oscar's real checkout views.

Each order is measured twice in the same test, with the plugin on and with it
switched off (:func:`bench.loyalty.plugin_disabled`: its receivers disconnected and
its offers suspended), so the budget is on what the plugin adds, whatever Oscar,
Wagtail or the example shop cost themselves. The member already has a long history,
so a query that reads it whole (or once per lot) would show up as a cost that grows.

The test's transaction never commits, so work deferred with
``transaction.on_commit`` would not run and not be counted; each measured order
runs its callbacks (``django_capture_on_commit_callbacks(execute=True)``) inside the
count, as a real request's commit would.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from oscar.apps.order.signals import order_placed
from oscar.core.loading import get_model

from bench.loyalty import build_history, loyalty_queries, plugin_disabled
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import Entry, Posting
from oscar_loyalty.services.members import get_or_create_member
from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

ConditionalOffer = get_model("offer", "ConditionalOffer")

pytestmark = pytest.mark.django_db

#: Queries the plugin may add to one order (the issue's goal).
BUDGET = 12


@pytest.fixture
def product():
    CountryFactory()
    return ProductFactory(title="Budget tea", stockrecord__stock=100)


@pytest.fixture
def order_queries(django_capture_on_commit_callbacks):
    """Place an order; return it with the queries it ran, on-commit work included."""

    def place(client, product):
        with CaptureQueriesContext(connection) as queries:
            with django_capture_on_commit_callbacks(execute=True):
                order = place_order(client, product)
        return order, queries.captured_queries

    return place


def member_with_history(client, product, entries):
    """Sign ``client`` in as a new member with ``entries`` past ledger entries."""
    user = UserFactory()
    member = build_history(get_or_create_member(user), entries)
    assert find_drift(member_ids=[member.pk]) == []
    assert Entry.objects.filter(member=member).count() == entries
    assert member.available > 0
    client.force_login(user)
    # The client's first order creates its basket and session: not measured.
    place_order(client, product)
    return member


def test_the_plugin_adds_at_most_the_budget_to_an_order_of_a_member_with_history(
    client,
    product,
    order_queries,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    member = member_with_history(client, product, 10_000)
    with plugin_disabled():
        _order, without = order_queries(client, product)
    assert loyalty_queries(without) == []

    with django_assert_max_num_queries(
        len(without) + BUDGET,
        info=f"The order took {len(without)} queries with the plugin off; it may "
        f"add {BUDGET}. Run with -v to see them.",
    ):
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(client, product)

    # The plugin really ran: the order earned its points.
    assert Posting.objects.filter(
        member=member, order_number=order.number, kind=Posting.Kind.EARN
    ).exists()


def test_an_orders_queries_do_not_grow_with_the_members_history(
    client, product, order_queries
):
    added = {}
    for entries in (1, 10_000):
        member_with_history(client, product, entries)
        with plugin_disabled():
            _order, without = order_queries(client, product)
        _order, with_plugin = order_queries(client, product)
        added[entries] = (
            len(with_plugin) - len(without),
            len(loyalty_queries(with_plugin)),
        )
    assert added[1] == added[10_000]


def test_switching_the_plugin_off_takes_its_receivers_and_offer_away(client, product):
    offer = ConditionalOffer.objects.get(slug="loyalty-points-redemption")
    assert offer.status == ConditionalOffer.OPEN
    receivers_before = len(order_placed.receivers)

    with plugin_disabled() as names:
        assert "oscar_loyalty.award_order" in names
        assert len(order_placed.receivers) == receivers_before - 1
        offer.refresh_from_db()
        assert offer.status == ConditionalOffer.SUSPENDED
        client.force_login(UserFactory())
        order = place_order(client, product)
        assert not Posting.objects.filter(order_number=order.number).exists()

    offer.refresh_from_db()
    assert offer.status == ConditionalOffer.OPEN
    assert len(order_placed.receivers) == receivers_before
    order = place_order(client, product)
    assert Posting.objects.filter(order_number=order.number).exists()
