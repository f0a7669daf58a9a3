"""One database's checkout figures; run by :mod:`bench.checkout` in a subprocess.

``python -m bench._checkout_worker --database-url URL --label NAME`` configures Django
with ``tests.settings`` on ``URL``, migrates it, makes a shipping country, a product and
a signed-in shopper, and places orders through the real checkout views with Django's
test ``Client``. It prints ``checkout_place_order_ms_NAME`` and
``checkout_queries_per_order_NAME``.
"""

import argparse
import os
import statistics
import sys
import time

from bench import emit, info


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._checkout_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--label", required=True, help="suffix of the figure names")
    parser.add_argument("--scale", type=int, default=30, help="orders measured")
    parser.add_argument("--warmup", type=int, default=3, help="orders not measured")
    return parser.parse_args(argv)


def setup_django(database_url):
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()


def migrate(label):
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    info(f"{label}: migrated in {time.perf_counter() - started:.1f} s")


def main(argv=None):
    args = parse_args(argv)
    setup_django(args.database_url)
    migrate(args.label)

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.checkout import place_order
    from tests.factories import CountryFactory, ProductFactory, UserFactory

    orders = args.warmup + args.scale + 1
    CountryFactory()
    product = ProductFactory(title="Benchmark tea", stockrecord__stock=orders + 10)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
