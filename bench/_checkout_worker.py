"""One database's checkout figures; run by :mod:`bench.checkout` in a subprocess.

``python -m bench._checkout_worker --database-url URL --label NAME`` configures Django
with ``tests.settings`` on ``URL``, migrates it, makes a shipping country, a product and
signed-in shoppers, and places orders through the real checkout views with Django's
test ``Client``. It prints, each suffixed with ``_NAME``:

* ``checkout_place_order_ms`` and ``checkout_queries_per_order``: a new customer's
  orders, with the plugin on as installed;
* ``checkout_loyalty_ratio``: median time of an order with the plugin on over the
  median with it off (:func:`bench.loyalty.plugin_disabled`), for a member with a
  history, the two kinds of order alternating;
* ``checkout_queries_added`` and ``checkout_queries_added_10k_history``: the SQL
  queries the plugin adds to one order of a member with 1 and with 10,000 ledger
  entries already.
"""

import argparse
import contextlib
import statistics
import sys
import time

from bench import _django, emit, info

HISTORIES = {"checkout_queries_added": 1, "checkout_queries_added_10k_history": 10_000}
#: The history of the member whose orders are timed on and off: a regular customer.
RATIO_HISTORY = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._checkout_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--label", required=True, help="suffix of the figure names")
    parser.add_argument("--scale", type=int, default=30, help="orders measured")
    parser.add_argument("--warmup", type=int, default=3, help="orders not measured")
    return parser.parse_args(argv)


def plugin(enabled):
    from bench.loyalty import plugin_disabled

    return contextlib.nullcontext() if enabled else plugin_disabled()


def member_client(entries):
    """A signed-in test client of a new member with ``entries`` past entries."""
    from django.test import Client

    from bench.loyalty import build_history
    from oscar_loyalty.audit import find_drift
    from oscar_loyalty.services.members import get_or_create_member
    from tests.factories import UserFactory

    user = UserFactory()
    member = build_history(get_or_create_member(user), entries)
    drift = find_drift(member_ids=[member.pk])
    if drift:
        raise RuntimeError(f"the generated history drifted: {drift[:3]}")
    client = Client()
    client.force_login(user)
    return client


def timed_order(client, product, enabled):
    """Milliseconds of one order, the plugin switched outside the timed part."""
    from tests.checkout import place_order

    with plugin(enabled):
        started = time.perf_counter()
        place_order(client, product)
        return (time.perf_counter() - started) * 1000


def counted_order(client, product, enabled):
    """The queries of one order: (all of them, those on the plugin's tables)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.loyalty import loyalty_queries
    from tests.checkout import place_order

    with plugin(enabled), CaptureQueriesContext(connection) as queries:
        place_order(client, product)
    return len(queries), len(loyalty_queries(queries.captured_queries))


def new_customer_figures(args, product):
    """The original figures: a new customer's orders, plugin on as installed."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.checkout import place_order
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    for _ in range(args.warmup):
        place_order(client, product)
    timings_ms = []
    for _ in range(args.scale):
        started = time.perf_counter()
        place_order(client, product)
        timings_ms.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        place_order(client, product)
    info(
        f"{args.label}: {args.scale} orders, "
        f"min {min(timings_ms):.1f} ms, max {max(timings_ms):.1f} ms"
    )
    emit(
        f"checkout_place_order_ms_{args.label}", f"{statistics.median(timings_ms):.1f}"
    )
    emit(f"checkout_queries_per_order_{args.label}", len(queries.captured_queries))


def ratio_figure(args, product):
    """Plugin on vs off for the same member, alternating on-off / off-on pairs."""
    from bench.loyalty import plugin_disabled

    client = member_client(RATIO_HISTORY)
    with plugin_disabled() as names:
        info(f"{args.label}: plugin off = without {', '.join(names)} and its offers")
    for _ in range(args.warmup):
        for enabled in (True, False):
            timed_order(client, product, enabled)
    timings = {True: [], False: []}
    for index in range(args.scale):
        pair = (True, False) if index % 2 == 0 else (False, True)
        for enabled in pair:
            timings[enabled].append(timed_order(client, product, enabled))
    on, off = statistics.median(timings[True]), statistics.median(timings[False])
    info(
        f"{args.label}: {args.scale} orders each, median {on:.1f} ms with the "
        f"plugin, {off:.1f} ms without"
    )
    emit(f"checkout_loyalty_ratio_{args.label}", f"{on / off:.3f}")


def queries_added_figures(args, product):
    for figure, entries in HISTORIES.items():
        started = time.perf_counter()
        client = member_client(entries)
        info(
            f"{args.label}: a member with {entries} ledger entries "
            f"made in {time.perf_counter() - started:.1f} s"
        )
        # The first orders of a client create its basket and session.
        counted_order(client, product, True)
        counted_order(client, product, False)
        counts = {}
        for _attempt in range(2):
            for enabled in (True, False):
                counts.setdefault(enabled, []).append(
                    counted_order(client, product, enabled)
                )
        if len(set(counts[True])) > 1 or len(set(counts[False])) > 1:
            info(f"{args.label}: query counts varied between orders: {counts}")
        (on, on_loyalty), (off, off_loyalty) = max(counts[True]), min(counts[False])
        info(
            f"{args.label}, {entries} entries: {on} queries with the plugin "
            f"({on_loyalty} on its tables), {off} without ({off_loyalty})"
        )
        emit(f"{figure}_{args.label}", on - off)


def main(argv=None):
    args = parse_args(argv)
    _django.setup(args.database_url)
    _django.migrate(args.label)

    from tests.factories import CountryFactory, ProductFactory

    CountryFactory()
    product = ProductFactory(title="Benchmark tea", stockrecord__stock=10**6)

    new_customer_figures(args, product)
    ratio_figure(args, product)
    queries_added_figures(args, product)
    return 0


if __name__ == "__main__":
    sys.exit(main())
