"""The expiry figures; run by :mod:`bench.expiry` in a subprocess.

``python -m bench._expiry_worker --database-url URL --raw-database-url RAW --scale S``:

1. writes the programme (:mod:`bench.dataset`) into ``URL``: ``S`` × 2.5 M due
   lots, one member per five of them, each member with one more lot still valid;
2. copies ``URL`` to ``RAW`` (``CREATE DATABASE ... TEMPLATE``): two identical
   fresh datasets;
3. on ``RAW``, times the raw SQL bound: one statement per lot-id chunk that
   locks, closes the due lots, writes a posting and an entry per lot and lowers the
   balances;
4. on ``URL``, times the real task path: ``oscar_loyalty.tasks.expire_points``
   (eager), which fans out to ``expire_points_chunk`` and ``jobs.expire_lots``;
5. checks both databases: every due lot expired, one expire posting and entry per
   lot, no drift (SQL over everything, and ``find_drift`` on a sample of members);
   and that both did the same work.

A ``CHECKPOINT`` precedes each timed run, so neither pays for the other's writes.
"""

import argparse
import random
import sys
import time

from bench import _django, emit, info, pg

FULL_SCALE_LOTS = 2_500_000
LOTS_PER_MEMBER = 5
DRIFT_SAMPLE = 2_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._expiry_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--raw-database-url", required=True)
    parser.add_argument("--scale", type=float, default=0.1)
    return parser.parse_args(argv)


def tables():
    from bench.dataset import table
    from oscar_loyalty.models import Entry, Lot, Member, Posting

    return {
        "posting_table": Posting._meta.db_table,
        "lot": table(Lot),
        "member": table(Member),
        "posting": table(Posting),
        "entry": table(Entry),
    }


RAW_CHUNK = """
WITH due AS (
    SELECT l.id, l.member_id, l.remaining,
        nextval(pg_get_serial_sequence('{posting_table}', 'id')) AS posting_id
    FROM {lot} AS l JOIN {member} AS m ON m.id = l.member_id
    WHERE l.id >= %(start)s AND l.id < %(end)s AND l.status = 'active'
        AND l.remaining > 0 AND l.expires_at <= %(now)s AND m.held = 0
    FOR UPDATE OF m
), closed AS (
    UPDATE {lot} AS l SET status = 'expired', remaining = 0
    FROM due WHERE l.id = due.id AND l.id >= %(start)s AND l.id < %(end)s
), posted AS (
    INSERT INTO {posting} (id, key, kind, member_id, created_at, order_number,
        reason, actor_id, actor_name, shortfall)
    SELECT posting_id, 'expire:' || id, 'expire', member_id, %(now)s, '', '', NULL,
        '', 0
    FROM due
), entered AS (
    INSERT INTO {entry} (posting_id, member_id, lot_id, available_change,
        pending_change)
    SELECT posting_id, member_id, id, -remaining, 0 FROM due
), balances AS (
    UPDATE {member} AS m SET available = m.available - t.total
    FROM (SELECT member_id, sum(remaining) AS total FROM due GROUP BY member_id) AS t
    WHERE m.id = t.member_id
)
SELECT count(*) FROM due
"""


def expire_with_raw_sql(url, now, chunk):
    """The same work as the task, as one SQL statement per chunk of lot ids."""
    names = tables()
    statement = RAW_CHUNK.format(**names)
    with pg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        low, high = conn.execute(
            f"SELECT min(id), max(id) FROM {names['lot']} WHERE status = 'active' "
            "AND remaining > 0 AND expires_at <= %(now)s",
            {"now": now},
        ).fetchone()
        expired = 0
        for start in range(low, high + 1, chunk):
            expired += conn.execute(
                statement, {"start": start, "end": start + chunk, "now": now}
            ).fetchone()[0]
        return time.perf_counter() - started, expired


def expire_with_the_task(now):
    from oscar_loyalty import tasks

    started = time.perf_counter()
    chunks = tasks.expire_points.delay(now.isoformat()).get()
    return time.perf_counter() - started, chunks


CHECKS = {
    "due lots left": """
        SELECT count(*) FROM {lot}
        WHERE status = 'active' AND remaining > 0 AND expires_at <= %(now)s""",
    "lots expired": "SELECT count(*) FROM {lot} WHERE status = 'expired'",
    "expire postings": "SELECT count(*) FROM {posting} WHERE kind = 'expire'",
    "expire entries": """
        SELECT count(*) FROM {entry} AS e JOIN {posting} AS p ON p.id = e.posting_id
        WHERE p.kind = 'expire'""",
    "valid lots touched": """
        SELECT count(*) FROM {lot}
        WHERE expires_at > %(now)s AND (status <> 'active' OR remaining <> points)""",
    "members whose available is not their active lots": """
        SELECT count(*) FROM {member} AS m LEFT JOIN (
            SELECT member_id, sum(remaining) AS total FROM {lot}
            WHERE status = 'active' GROUP BY member_id
        ) AS t ON t.member_id = m.id
        WHERE m.available <> coalesce(t.total, 0)""",
    "members whose available is not their entries": """
        SELECT count(*) FROM {member} AS m LEFT JOIN (
            SELECT member_id, sum(available_change) AS total FROM {entry}
            GROUP BY member_id
        ) AS t ON t.member_id = m.id
        WHERE m.available <> coalesce(t.total, 0)""",
    "lots whose remaining is not their entries": """
        SELECT count(*) FROM {lot} AS l JOIN (
            SELECT lot_id, sum(available_change + pending_change) AS total
            FROM {entry} GROUP BY lot_id
        ) AS t ON t.lot_id = l.id
        WHERE l.remaining <> t.total""",
    "points available": "SELECT coalesce(sum(available), 0) FROM {member}",
}


def check(url, now):
    names = tables()
    with pg.connect(url, autocommit=True) as conn:
        return {
            what: conn.execute(sql.format(**names), {"now": now}).fetchone()[0]
            for what, sql in CHECKS.items()
        }


def verify(label, found, due):
    """Problems with a run's result, as sentences (empty: it did the work right)."""
    expected = {
        "due lots left": 0,
        "lots expired": due,
        "expire postings": due,
        "expire entries": due,
        "valid lots touched": 0,
        "members whose available is not their active lots": 0,
        "members whose available is not their entries": 0,
        "lots whose remaining is not their entries": 0,
    }
    return [
        f"{label}: {what} = {found[what]}, expected {value}"
        for what, value in expected.items()
        if found[what] != value
    ]


def sample_drift(first, last):
    from oscar_loyalty.audit import find_drift

    sample = random.Random(3).sample(range(first, last + 1), min(DRIFT_SAMPLE, last))
    return find_drift(member_ids=sample)


def main(argv=None):
    args = parse_args(argv)
    due = max(round(FULL_SCALE_LOTS * args.scale), LOTS_PER_MEMBER)
    members = due // LOTS_PER_MEMBER
    _django.setup(args.database_url)
    _django.migrate("expiry")

    from django.db import connection
    from django.utils import timezone

    from bench import dataset
    from oscar_loyalty.conf import loyalty_settings

    now = timezone.now().replace(microsecond=0)
    dataset.pause_autovacuum()
    first, last = dataset.populate(
        members=members, due_lots=due, valid_lots=members, now=now
    )
    connection.close()
    started = time.perf_counter()
    pg.recreate_database(args.raw_database_url, template=args.database_url)
    info(f"expiry: copied the dataset in {time.perf_counter() - started:.1f} s")

    pg.checkpoint(args.raw_database_url)
    raw_seconds, raw_expired = expire_with_raw_sql(
        args.raw_database_url, now, loyalty_settings.EXPIRY_CHUNK
    )
    info(f"expiry: raw SQL expired {raw_expired} lots in {raw_seconds:.1f} s")

    pg.checkpoint(args.database_url)
    task_seconds, chunks = expire_with_the_task(now)
    info(
        f"expiry: the task expired {due} lots in {chunks} chunks, {task_seconds:.1f} s"
    )

    problems = []
    results = {}
    for label, url in (("task", args.database_url), ("raw SQL", args.raw_database_url)):
        started = time.perf_counter()
        results[label] = check(url, now)
        problems += verify(label, results[label], due)
        info(
            f"expiry: checked the {label} run in {time.perf_counter() - started:.1f} s"
        )
    if results["task"]["points available"] != results["raw SQL"]["points available"]:
        problems.append(f"the two runs disagree: {results}")
    drift = sample_drift(first, last)
    problems += [f"task: {problem}" for problem in drift[:10]]

    emit("expiry_due_lots", due)
    if problems:
        for problem in problems:
            info(f"expiry: WRONG: {problem}")
        emit("expiry_task_seconds", "failed (wrong result, see stderr)")
        emit("expiry_2_5m_lots_seconds", "failed (wrong result, see stderr)")
        emit("expiry_vs_raw_sql_ratio", "failed (wrong result, see stderr)")
        return 1
    emit("expiry_task_seconds", f"{task_seconds:.1f}")
    if due >= FULL_SCALE_LOTS:
        emit("expiry_2_5m_lots_seconds", f"{task_seconds:.1f}")
    else:
        # Named for 2.5 M lots: only a --scale 1 run measures it.
        emit("expiry_2_5m_lots_seconds", f"not measured ({due} lots; --scale 1)")
    emit("expiry_raw_sql_seconds", f"{raw_seconds:.1f}")
    emit("expiry_vs_raw_sql_ratio", f"{task_seconds / raw_seconds:.2f}")
    emit("expiry_lots_per_second", f"{due / task_seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
