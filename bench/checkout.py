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

import tempfile
from pathlib import Path

from bench import emit, info, pg
from bench.workers import run_worker

DEFAULT_SCALE = 30
WARMUP = 3
PER_DATABASE = ("checkout_place_order_ms", "checkout_queries_per_order")
HEADLINE = (
    "checkout_loyalty_ratio",
    "checkout_queries_added",
    "checkout_queries_added_10k_history",
)
FIGURES = PER_DATABASE + HEADLINE


def scale_of(args):
    if args.scale is None:
        return DEFAULT_SCALE
    if args.scale < 1 or args.scale != int(args.scale):
        raise SystemExit("checkout: --scale is a number of orders (1 or more)")
    return int(args.scale)


def run(args):
    scale = scale_of(args)
    status = 0
    with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'checkout.sqlite3'}"
        status = max(status, measure("sqlite", sqlite_url, scale, tmp)[0])
        try:
            url = pg.fresh_copy("checkout")
        except pg.Unavailable as exc:
            for figure in FIGURES:
                emit(f"{figure}_postgres", f"skipped ({exc})")
            for figure in HEADLINE:
                emit(figure, f"skipped ({exc}); see {figure}_sqlite")
            return status
        try:
            code, figures = measure("postgres", url, scale, tmp)
        finally:
            pg.drop_database(url)
    status = max(status, code)
    for figure in HEADLINE:
        emit(figure, figures.get(f"{figure}_postgres", "failed (see above)"))
    return status


def measure(label, database_url, scale, tmp):
    """Run the worker for one database: (0 when it worked, {figure: value})."""
    info(f"{label}: placing {WARMUP}+{scale} orders per measure")
    return run_worker(
        "bench._checkout_worker",
        [
            "--database-url",
            database_url,
            "--label",
            label,
            "--scale",
            scale,
            "--warmup",
            WARMUP,
        ],
        label=label,
        figures=[f"{figure}_{label}" for figure in FIGURES],
        env={
            "DJANGO_MEDIA_ROOT": str(Path(tmp) / f"media-{label}"),
            "EXAMPLE_SHOP_VAR_DIR": tmp,
        },
    )
