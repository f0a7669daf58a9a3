"""``ledger``: redemptions per second through ``services.ledger.redeem``, PostgreSQL.

Figures:

* ``ledger_posts_per_second``: redemptions per second by one process;
* ``ledger_posts_per_second_2_processes``: the same by two processes at once, on
  disjoint members (how far a second worker adds throughput on this machine).

``--scale`` multiplies the 3,000 redemptions per process (default 1). The worker
(:mod:`bench._ledger_worker`) explains the data; its database is a copy of the
migrated template, dropped afterwards.
"""

from bench import emit, pg
from bench.workers import run_worker

DEFAULT_SCALE = 1
FIGURES = ("ledger_posts_per_second", "ledger_posts_per_second_2_processes")


def run(args):
    scale = args.scale or DEFAULT_SCALE
    try:
        url = pg.fresh_copy("ledger")
    except pg.Unavailable as exc:
        for figure in FIGURES:
            emit(figure, f"skipped ({exc})")
        return 0
    try:
        status, _figures = run_worker(
            "bench._ledger_worker",
            ["--database-url", url, "--scale", scale],
            label="ledger",
            figures=FIGURES,
        )
    finally:
        pg.drop_database(url)
    return status
