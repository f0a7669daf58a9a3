"""``basket``: what the plugin adds to rendering the basket page.

Figures, per database (suffix ``_sqlite``, then ``_postgres``):

* ``basket_render_ms_on`` / ``basket_render_ms_off``: median milliseconds of one
  basket page (``GET /shop/basket/``, three lines) for a Gold member with a
  history and two coupons, while a tier discount, tier free shipping and a
  member-day campaign are active; with the plugin on, and switched off;
* ``basket_queries_on`` / ``basket_queries_off``: SQL queries of one such page;
* ``basket_loyalty_ratio``: median render with the plugin on / off;
* ``basket_oscar_offer_ratio``: with the plugin off, median render with one plain
  Oscar SITE offer (5 % off everything, nothing of the plugin in it) / without:
  what a single offer of Oscar's own costs the page, measured in the same run.

"Off" is the plugin taken out of a running shop
(:func:`bench.loyalty.plugin_disabled` with ``templates=True``): its receivers
disconnected, its offers suspended, its template overrides hidden, so Oscar
renders its own basket page. On and off alternate in pairs.

``basket_loyalty_ratio`` is also printed without suffix, from PostgreSQL (goal
≤ 1.15).
"""

from bench import info
from bench.workers import sqlite_then_postgres, whole_scale

DEFAULT_SCALE = 60
WARMUP = 5
PER_DATABASE = (
    "basket_render_ms_on",
    "basket_render_ms_off",
    "basket_queries_on",
    "basket_queries_off",
    "basket_oscar_offer_ratio",
)
HEADLINE = ("basket_loyalty_ratio",)


def run(args):
    scale = whole_scale(args, DEFAULT_SCALE, "basket", "page renders")
    info(f"rendering the basket {WARMUP}+{scale} times per measure")
    return sqlite_then_postgres(
        "basket",
        "bench._basket_worker",
        ["--scale", scale, "--warmup", WARMUP],
        figures=PER_DATABASE,
        headline=HEADLINE,
    )
