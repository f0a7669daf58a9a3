"""``expiry``: expiring millions of due lots with the real Celery task, on PostgreSQL.

Figures:

* ``expiry_due_lots``: due lots expired (``--scale`` × 2.5 M; default 0.1);
* ``expiry_task_seconds``: wall seconds of ``oscar_loyalty.tasks.expire_points``
  (eager: it fans out to ``expire_points_chunk`` over lot-id ranges, which call
  ``jobs.expire_lots``) expiring them;
* ``expiry_2_5m_lots_seconds``: the same, printed only by a ``--scale 1`` run (the
  2.5 M lots the name says); smaller runs print "not measured";
* ``expiry_raw_sql_seconds``: the same work as one SQL statement per chunk, on an
  identical fresh copy of the data, in the same run;
* ``expiry_vs_raw_sql_ratio``: the first over the second (goal ≤ 1.5);
* ``expiry_lots_per_second``: due lots over the task's seconds.

The worker (:mod:`bench._expiry_worker`) explains the data and the checks. Both
databases are copies of the migrated template, dropped afterwards.
"""

from bench import emit, pg
from bench.workers import run_worker

DEFAULT_SCALE = 0.1
FIGURES = (
    "expiry_due_lots",
    "expiry_task_seconds",
    "expiry_2_5m_lots_seconds",
    "expiry_raw_sql_seconds",
    "expiry_vs_raw_sql_ratio",
    "expiry_lots_per_second",
)


def run(args):
    scale = args.scale or DEFAULT_SCALE
    try:
        url = pg.fresh_copy("expiry")
    except pg.Unavailable as exc:
        for figure in FIGURES:
            emit(figure, f"skipped ({exc})")
        return 0
    raw_url = pg.bench_database_url(pg.migrated_template(), "expiry_raw")
    try:
        status, _figures = run_worker(
            "bench._expiry_worker",
            ["--database-url", url, "--raw-database-url", raw_url, "--scale", scale],
            label="expiry",
            figures=FIGURES,
        )
    finally:
        pg.drop_database(raw_url)
        pg.drop_database(url)
    return status
