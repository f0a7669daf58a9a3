"""PostgreSQL-only behaviour: real row locks between processes, and the checkout.

Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name>``; pytest-django
creates and drops ``test_<name>``. Without PostgreSQL these tests skip (fail in CI).
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.urls import reverse

from tests.checkout import place_order
from tests.concurrency import run_in_processes
from tests.factories import CountryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.postgres

PROCESSES = 2
INCREMENTS = 8


# Functions the child processes run (module level, so they can import them) ------------


def increment_first_name_under_a_row_lock(user_pk, times):
    """Read-increment-write ``first_name`` ``times`` times, each in its own
    transaction that locks the row first."""
    User = get_user_model()
    for _ in range(times):
        with transaction.atomic():
            user = User.objects.select_for_update().get(pk=user_pk)
            time.sleep(0.002)  # widen the read-write window a racing update needs
            user.first_name = str(int(user.first_name) + 1)
            user.save(update_fields=["first_name"])
    return times


def describe_the_connection():
    from django.conf import settings

    User = get_user_model()
    return (
        connection.vendor,
        connection.settings_dict["NAME"],
        settings.DATABASES["default"]["NAME"],
        User.objects.filter(username="committed-shopper").exists(),
    )


def fail_loudly(message):
    raise ValueError(message)


# The helper ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_child_processes_use_the_test_database_and_see_committed_rows():
    UserFactory(username="committed-shopper")
    test_db = connection.settings_dict["NAME"]

    outcomes = run_in_processes(describe_the_connection, PROCESSES)

    assert [outcome.error for outcome in outcomes] == [None] * PROCESSES
    assert [outcome.value for outcome in outcomes] == [
        ("postgresql", test_db, test_db, True)
    ] * PROCESSES
    assert test_db.startswith("test_")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_child_processs_exception_comes_back_as_text(start_method):
    outcomes = run_in_processes(
        fail_loudly, PROCESSES, args=("no tea today",), start_method=start_method
    )

    assert [outcome.ok for outcome in outcomes] == [False] * PROCESSES
    for outcome in outcomes:
        assert "ValueError: no tea today" in outcome.error


@pytest.mark.django_db
def test_the_helper_refuses_to_run_inside_the_tests_transaction():
    with pytest.raises(RuntimeError, match="transaction=True"):
        run_in_processes(describe_the_connection, PROCESSES)


# Row locks ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_select_for_update_serialises_concurrent_read_increment_write():
    """Given one counter row, when two processes each increment it 8 times under
    ``select_for_update``, then no increment is lost."""
    user = UserFactory(first_name="0")

    outcomes = run_in_processes(
        increment_first_name_under_a_row_lock,
        PROCESSES,
        args=(user.pk, INCREMENTS),
    )

    assert [outcome.error for outcome in outcomes] == [None] * PROCESSES
    user.refresh_from_db()
    assert user.first_name == str(PROCESSES * INCREMENTS)


# Oscar on PostgreSQL ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_shopper_buys_through_oscars_checkout_views_on_postgresql(client):
    assert connection.vendor == "postgresql"
    CountryFactory()
    shopper = UserFactory()
    product = ProductFactory(title="Tieguanyin oolong")
    client.force_login(shopper)

    order = place_order(client, product, quantity=3)

    assert order.user == shopper
    assert order.total_incl_tax == 264
    stockrecord = product.stockrecords.get()
    assert stockrecord.num_allocated == 3
    response = client.get(reverse("checkout:thank-you"))
    assert response.status_code == 200
    assert order.number in response.content.decode()
