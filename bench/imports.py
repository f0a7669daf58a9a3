"""``import``: importing a members file of 100,000 rows with the real importer, on
PostgreSQL.

Figures:

* ``import_rows``: rows in the generated CSV (``--scale`` × 100,000; default 1);
* ``import_seconds``: wall seconds of ``oscar_loyalty.imports.import_members``
  importing it (new customers, members, consents, opening balances; one
  transaction, all or nothing);
* ``import_100k_members_seconds``: the same, printed only when the file has the
  100,000 rows the name says;
* ``import_rows_per_second``: rows over those seconds (goal ≥ 5,000);
* ``import_peak_mb``: the worker's peak resident memory (Django loaded, the import
  done);
* ``import_growth_mb``: how much the import raised that peak above the worker's
  memory just before it; the same figure for a file a tenth as long is
  ``import_growth_tenth_mb`` (a separate process), so flat memory shows as two
  close numbers;
* ``import_rerun_seconds``: importing the same file again, which must add nothing
  (every row unchanged, no posting written).

The worker (:mod:`bench._import_worker`) checks the result: one member, one
opening posting/lot/entry per row with points, no drift.
"""

from bench import emit, pg
from bench.workers import run_worker

DEFAULT_SCALE = 1
FIGURES = (
    "import_rows",
    "import_seconds",
    "import_100k_members_seconds",
    "import_rows_per_second",
    "import_peak_mb",
    "import_growth_mb",
    "import_rerun_seconds",
)


def run(args):
    scale = args.scale or DEFAULT_SCALE
    try:
        small_url = pg.fresh_copy("import_small")
    except pg.Unavailable as exc:
        for figure in (*FIGURES, "import_growth_tenth_mb"):
            emit(figure, f"skipped ({exc})")
        return 0
    try:
        small_status, _ = run_worker(
            "bench._import_worker",
            ["--database-url", small_url, "--scale", scale / 10, "--prefix", "tenth_"],
            label="import (a tenth)",
            figures=("import_growth_tenth_mb",),
        )
    finally:
        pg.drop_database(small_url)
    url = pg.fresh_copy("import")
    try:
        status, _figures = run_worker(
            "bench._import_worker",
            ["--database-url", url, "--scale", scale],
            label="import",
            figures=FIGURES,
        )
    finally:
        pg.drop_database(url)
    return max(status, small_status)
