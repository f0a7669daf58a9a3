"""``scoring``: the nightly member scoring of a million members, on PostgreSQL.

Figures:

* ``scoring_members`` and ``scoring_orders``: the shop scored (``--scale`` × 1 M
  members with five orders each; default 0.1);
* ``scoring_task_seconds``: wall seconds of ``oscar_loyalty.tasks.score_members``
  (eager: one transaction that measures every member who agreed, takes the cut
  points and writes the run's rows; then the win-back rules and the history
  thinning) scoring them: activity, value, RFM and churn risk;
* ``scoring_1m_members_seconds``: the same, printed only by a ``--scale 1`` run
  (goal ≤ 10 s); smaller runs print "not measured";
* ``scoring_raw_sql_seconds``: the same scores by hand-written SQL (two
  statements, one transaction) over all members, on an identical fresh copy of
  the data, in the same run;
* ``scoring_vs_raw_sql_ratio``: the first over the second (goal ≤ 1.5).

The worker (:mod:`bench._scoring_worker`) explains the data and the checks.
Both databases are copies of the migrated template, dropped afterwards.
"""

from bench import emit, pg
from bench.workers import run_worker

DEFAULT_SCALE = 0.1
FIGURES = (
    "scoring_members",
    "scoring_orders",
    "scoring_task_seconds",
    "scoring_1m_members_seconds",
    "scoring_raw_sql_seconds",
    "scoring_vs_raw_sql_ratio",
)


def run(args):
    scale = args.scale or DEFAULT_SCALE
    try:
        url = pg.fresh_copy("scoring")
    except pg.Unavailable as exc:
        for figure in FIGURES:
            emit(figure, f"skipped ({exc})")
        return 0
    raw_url = pg.bench_database_url(pg.migrated_template(), "scoring_raw")
    try:
        status, _figures = run_worker(
            "bench._scoring_worker",
            ["--database-url", url, "--raw-database-url", raw_url, "--scale", scale],
            label="scoring",
            figures=FIGURES,
        )
    finally:
        pg.drop_database(raw_url)
        pg.drop_database(url)
    return status
