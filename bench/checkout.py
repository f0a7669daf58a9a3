"""``checkout``: what placing one order through Oscar's checkout views costs.

Figures, per database (suffix ``_sqlite``, then ``_postgres``):

* ``checkout_place_order_ms``: median milliseconds of one order (basket → shipping
  address → preview → place order) of a new customer, over ``--scale`` orders;
* ``checkout_queries_per_order``: SQL queries of one such order;
* ``checkout_loyalty_ratio``: median order time with the plugin on / off;
* ``checkout_queries_added`` / ``checkout_queries_added_10k_history``: queries the
  plugin adds to one order of a member with 1 / 10,000 past ledger entries.

The last three are also printed without suffix, from PostgreSQL (the database a
shop runs on): they are the figures with goals (≤ 1.10, ≤ 12 and equal).

Django's settings can be configured once per process, so each database is measured
by a worker subprocess (:mod:`bench._checkout_worker`) on a fresh database of its own:
SQLite in a temporary directory; for PostgreSQL a copy of the migrated template
(:mod:`bench.pg`), dropped afterwards.
"""

from bench import info
from bench.workers import sqlite_then_postgres, whole_scale

DEFAULT_SCALE = 30
WARMUP = 3
PER_DATABASE = ("checkout_place_order_ms", "checkout_queries_per_order")
HEADLINE = (
    "checkout_loyalty_ratio",
    "checkout_queries_added",
    "checkout_queries_added_10k_history",
)


def run(args):
    scale = whole_scale(args, DEFAULT_SCALE, "checkout", "orders")
    info(f"placing {WARMUP}+{scale} orders per measure")
    return sqlite_then_postgres(
        "checkout",
        "bench._checkout_worker",
        ["--scale", scale, "--warmup", WARMUP],
        figures=PER_DATABASE,
        headline=HEADLINE,
    )
