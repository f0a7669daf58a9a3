"""``basket``: what the plugin adds to rendering the basket page.

Figures, per database (suffix ``_sqlite``, then ``_postgres``):

* ``basket_render_ms_on`` / ``basket_render_ms_off``: median milliseconds of one
  basket page (``GET /shop/basket/``, three lines) for a Gold member with a
  history and two coupons, while a tier discount, tier free shipping and a
  member-day campaign are active; with the plugin on, and switched off;
* ``basket_queries_on`` / ``basket_queries_off``: SQL queries of one such page;
* ``basket_loyalty_ratio``: median render with the plugin on / off.

"Off" is the plugin taken out of a running shop
(:func:`bench.loyalty.plugin_disabled` with ``templates=True``): its receivers
disconnected, its offers suspended, its template overrides hidden, so Oscar
renders its own basket page. On and off alternate in pairs.

``basket_loyalty_ratio`` is also printed without suffix, from PostgreSQL (goal
≤ 1.15).
"""

import tempfile
from pathlib import Path

from bench import emit, info, pg
from bench.workers import run_worker

DEFAULT_SCALE = 60
WARMUP = 5
PER_DATABASE = (
    "basket_render_ms_on",
    "basket_render_ms_off",
    "basket_queries_on",
    "basket_queries_off",
)
HEADLINE = ("basket_loyalty_ratio",)
FIGURES = PER_DATABASE + HEADLINE


def scale_of(args):
    if args.scale is None:
        return DEFAULT_SCALE
    if args.scale < 1 or args.scale != int(args.scale):
        raise SystemExit("basket: --scale is a number of page renders (1 or more)")
    return int(args.scale)


def run(args):
    scale = scale_of(args)
    status = 0
    with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'basket.sqlite3'}"
        status = max(status, measure("sqlite", sqlite_url, scale, tmp)[0])
        try:
            url = pg.fresh_copy("basket")
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
    info(f"{label}: rendering the basket {WARMUP}+{scale} times per measure")
    return run_worker(
        "bench._basket_worker",
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
