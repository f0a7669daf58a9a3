"""``tier_review``: the periodic tier review of a million members, on PostgreSQL.

Figures:

* ``tier_review_members``: members reviewed (``--scale`` × 1 M; default 0.1);
* ``tier_review_task_seconds``: wall seconds of ``oscar_loyalty.tasks.review_tiers``
  (eager: it fans out to ``review_tiers_chunk`` over member-id ranges, which call
  ``services.tiers.review``) reviewing them;
* ``tier_review_1m_seconds``: the same, printed only by a ``--scale 1`` run (the
  1 M members the name says); smaller runs print "not measured";
* ``tier_review_raw_sql_seconds``: the same work as one SQL statement per chunk,
  on an identical fresh copy of the data, in the same run;
* ``tier_review_vs_raw_sql_ratio``: the first over the second (goal ≤ 1.5);
* ``tier_review_changes``: members whose tier the task changed.

The worker (:mod:`bench._tier_review_worker`) explains the data and the checks.
Both databases are copies of the migrated template, dropped afterwards.
"""

from bench import emit, pg
from bench.workers import run_worker

DEFAULT_SCALE = 0.1
FIGURES = (
    "tier_review_members",
    "tier_review_task_seconds",
    "tier_review_1m_seconds",
    "tier_review_raw_sql_seconds",
    "tier_review_vs_raw_sql_ratio",
    "tier_review_changes",
)


def run(args):
    scale = args.scale or DEFAULT_SCALE
    try:
        url = pg.fresh_copy("tier_review")
    except pg.Unavailable as exc:
        for figure in FIGURES:
            emit(figure, f"skipped ({exc})")
        return 0
    raw_url = pg.bench_database_url(pg.migrated_template(), "tier_review_raw")
    try:
        status, _figures = run_worker(
            "bench._tier_review_worker",
            ["--database-url", url, "--raw-database-url", raw_url, "--scale", scale],
            label="tier_review",
            figures=FIGURES,
        )
    finally:
        pg.drop_database(raw_url)
        pg.drop_database(url)
    return status
