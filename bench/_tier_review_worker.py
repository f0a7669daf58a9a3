"""The tier-review figures; run by :mod:`bench.tier_review` in a subprocess.

``python -m bench._tier_review_worker --database-url URL --raw-database-url RAW
--scale S``:

1. writes a tiers programme (:func:`bench.dataset.populate_tiers`) into ``URL``:
   ``S`` × 1 M members (and users), tiers Regular 0 / Silver 1,000 / Gold 5,000 /
   Diamond 10,000 with their groups ``loyalty:<code>``, and five order-activity
   rows per member (placed over the last 18 months, spend 0–3,000; 10 % never
   confirmed, 4 % cancelled, 8 % refunded in part). Every member is in a tier
   already, and in its groups (cumulative); by a fixed hash of the member id
   (:func:`bench.dataset.tier_mix`), relative to the tier their activity reaches:

   ========================= ===== ==========================================
   part                      share what the review must do
   ========================= ===== ==========================================
   ``up``                    5 %   move up one tier (from no tier at all when
                                   they reach Regular only)
   ``grace``                 4 %   one tier above, no grace: start the grace
   ``grace_after_protection`` 1 %  the same, protection ended 5 days ago
   ``down``                  2 %   one above, grace ended: move down
   ``protected``             1 %   one above, protected: keep them
   ``in_grace``              2 %   one above, grace running: keep them
   ``clear``                 1 %   in their tier, grace set: clear it
   ``protected_same``        1 %   in their tier, protected: nothing
   ``keep``                  83 %  in their tier: nothing
   ========================= ===== ==========================================

   ("One above" stops at Diamond: those members are in the tier they reach.) So
   about 6.5 % of the members change tier and 5 % start a grace period;

2. copies ``URL`` to ``RAW`` (``CREATE DATABASE ... TEMPLATE``);
3. on ``RAW``, times the raw SQL bound: one statement per member-id chunk of
   ``OSCAR_LOYALTY_TIER_REVIEW_CHUNK`` that locks the members, sums their
   qualifying spend,
   finds the tier it reaches, applies the review's decisions
   (:func:`oscar_loyalty.services.tiers.decide`), updates the members, writes a
   ``review`` :class:`TierChange` per move and puts each moved member's user in
   exactly the groups of their new tier and the tiers below it;
4. on ``URL``, times the real task path: ``oscar_loyalty.tasks.review_tiers``
   (eager), which fans out to ``review_tiers_chunk`` and ``tiers.review``;
5. checks both databases against what the mix says each member must end as
   (tier, grace, ``tier_since``, one history row per move with the right tiers
   and value, tier groups), that both runs agree row for row (hashes of members,
   history and tier groups per chunk of member ids), and that a second review at
   the same ``now`` changes nothing, on both.

A ``CHECKPOINT`` precedes each timed run, so neither pays for the other's writes.
The raw SQL assumes the default tier settings (spend basis, 12-month rolling
window, no return window); the worker refuses others.
"""

import argparse
import sys
import time
from datetime import timedelta

from bench import _django, emit, info, pg

FULL_SCALE_MEMBERS = 1_000_000
FAILED = "failed (wrong result, see stderr)"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._tier_review_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--raw-database-url", required=True)
    parser.add_argument("--scale", type=float, default=0.1)
    return parser.parse_args(argv)


def tables():
    from django.contrib.auth import get_user_model

    from bench.dataset import table
    from oscar_loyalty.models import Member, OrderActivity, Tier, TierChange

    return {
        "member": table(Member),
        "activity": table(OrderActivity),
        "tier": table(Tier),
        "change": table(TierChange),
        "membership": table(get_user_model().groups.through),
    }


RAW_CHUNK = """
WITH locked AS (
    SELECT m.id, m.user_id, m.tier_id, m.tier_protected_until, m.tier_grace_until,
        coalesce(t.rank, -1) AS rank
    FROM {member} AS m LEFT JOIN {tier} AS t ON t.id = m.tier_id
    WHERE m.id >= %(start)s AND m.id < %(end)s
    FOR UPDATE OF m
), qualifying AS (
    SELECT member_id, sum(spend - refunded) AS value FROM {activity}
    WHERE member_id >= %(start)s AND member_id < %(end)s
        AND confirmed_at IS NOT NULL AND cancelled_at IS NULL
        AND placed_at >= %(window_start)s AND placed_at <= %(now)s
    GROUP BY member_id
), decided AS (
    SELECT l.*, coalesce(q.value, 0) AS value, target.id AS target_id,
        CASE
            WHEN coalesce(target.rank, -1) > l.rank THEN 'up'
            WHEN coalesce(target.rank, -1) = l.rank THEN
                CASE WHEN l.tier_grace_until IS NULL THEN 'keep' ELSE 'clear' END
            WHEN l.tier_protected_until > %(now)s THEN 'protected'
            WHEN l.tier_grace_until IS NULL AND %(grace)s THEN 'grace'
            WHEN l.tier_grace_until > %(now)s THEN 'keep'
            ELSE 'down'
        END AS action
    FROM locked AS l
    LEFT JOIN qualifying AS q ON q.member_id = l.id
    LEFT JOIN LATERAL (
        SELECT id, rank FROM {tier} WHERE threshold <= coalesce(q.value, 0)
        ORDER BY rank DESC LIMIT 1
    ) AS target ON true
), updated AS (
    UPDATE {member} AS m SET
        tier_id = CASE WHEN d.action IN ('up', 'down') THEN d.target_id
            ELSE m.tier_id END,
        tier_since = CASE WHEN d.action IN ('up', 'down') THEN %(now)s
            ELSE m.tier_since END,
        tier_grace_until = CASE WHEN d.action = 'grace' THEN %(grace_until)s END
    FROM decided AS d
    WHERE m.id = d.id AND d.action IN ('up', 'down', 'grace', 'clear')
        AND m.id >= %(start)s AND m.id < %(end)s
), history AS (
    INSERT INTO {change} (member_id, from_tier_id, to_tier_id, kind,
        qualifying_value, reason, actor_id, actor_name, protected_until, created_at)
    SELECT id, tier_id, target_id, 'review', value, '', NULL, '',
        tier_protected_until, %(now)s
    FROM decided WHERE action IN ('up', 'down')
), moved AS (
    SELECT d.user_id, coalesce(t.rank, -1) AS rank
    FROM decided AS d LEFT JOIN {tier} AS t ON t.id = d.target_id
    WHERE d.action IN ('up', 'down')
), ungrouped AS (
    -- The groups of the tiers above the new one go; those of the new tier and
    -- the tiers below it are kept or added: the memberships a full resync leaves.
    -- (= ANY (ARRAY(...)): an index scan for the few users, whatever the
    -- planner guesses of the CTE's size.)
    DELETE FROM {membership} AS ug
    USING moved, {tier} AS t
    WHERE ug.user_id = ANY (ARRAY(SELECT user_id FROM moved))
        AND ug.user_id = moved.user_id AND ug.group_id = t.group_id
        AND t.rank > moved.rank
), grouped AS (
    INSERT INTO {membership} (user_id, group_id)
    SELECT moved.user_id, t.group_id FROM moved
    JOIN {tier} AS t ON t.rank <= moved.rank AND t.group_id IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT count(*) FILTER (WHERE action = 'up'),
    count(*) FILTER (WHERE action = 'down'),
    count(*) FILTER (WHERE action = 'grace'),
    count(*) FILTER (WHERE action = 'clear')
FROM decided
"""


def review_params(now):
    from oscar_loyalty import rules
    from oscar_loyalty.conf import loyalty_settings

    grace = timedelta(days=loyalty_settings.TIER_GRACE_DAYS)
    return {
        "now": now,
        "window_start": rules.tier_window_start(now),
        "grace": bool(grace),
        "grace_until": now + grace,
    }


def review_with_raw_sql(url, now, chunk):
    """The review as one SQL statement per chunk of member ids; (seconds,
    (ups, downs, graces started, graces cleared))."""
    statement = RAW_CHUNK.format(**tables())
    params = review_params(now)
    totals = [0, 0, 0, 0]
    with pg.connect(url, autocommit=True) as conn:
        # Compiling the statement would take longer than running it (the planner
        # cannot size the CTEs, so their costs look huge): no JIT for the bound.
        conn.execute("SET jit = off")
        started = time.perf_counter()
        low, high = conn.execute(
            "SELECT min(id), max(id) FROM {member}".format(**tables())
        ).fetchone()
        for start in range(low, high + 1, chunk):
            row = conn.execute(
                statement, {**params, "start": start, "end": start + chunk}
            ).fetchone()
            totals = [a + b for a, b in zip(totals, row, strict=True)]
        return time.perf_counter() - started, tuple(totals)


def review_with_the_task(now):
    from oscar_loyalty import tasks

    started = time.perf_counter()
    chunks = tasks.review_tiers.delay(now.isoformat()).get()
    return time.perf_counter() - started, chunks


EXPECTED = """
WITH qualifying AS (
    SELECT member_id, sum(spend - refunded) AS value FROM {activity}
    WHERE confirmed_at IS NOT NULL AND cancelled_at IS NULL
        AND placed_at >= %(window_start)s AND placed_at <= %(now)s
    GROUP BY member_id
), reached AS (
    SELECT m.*, coalesce(q.value, 0) AS value, {mix} AS mix,
        (SELECT max(rank) FROM {tier}
         WHERE threshold <= coalesce(q.value, 0)) AS target
    FROM {member} AS m LEFT JOIN qualifying AS q ON q.member_id = m.id
), expected AS (
    SELECT r.*,
        r.target + CASE WHEN r.mix IN ('grace', 'grace_after_protection',
            'protected', 'in_grace') AND r.target < %(top)s THEN 1 ELSE 0 END
            AS want_rank,
        r.mix IN ('grace', 'grace_after_protection', 'in_grace')
            AND r.target < %(top)s AS want_grace,
        r.mix IN ('grace', 'grace_after_protection')
            AND r.target < %(top)s AS grace_started,
        r.mix = 'up' OR (r.mix = 'down' AND r.target < %(top)s) AS want_move,
        coalesce(t.rank, -1) AS rank
    FROM reached AS r LEFT JOIN {tier} AS t ON t.id = r.tier_id
)
"""

CHECKS = {
    "members in the wrong tier": "SELECT count(*) FROM expected "
    "WHERE rank <> want_rank",
    "members whose grace is wrongly set or not": "SELECT count(*) FROM expected "
    "WHERE (tier_grace_until IS NOT NULL) <> want_grace",
    "graces started not ending after the grace days": "SELECT count(*) "
    "FROM expected WHERE grace_started AND tier_grace_until <> %(grace_until)s",
    "moved members whose tier_since is not now": "SELECT count(*) FROM expected "
    "WHERE want_move AND tier_since IS DISTINCT FROM %(now)s",
    "unmoved members whose tier_since is now": "SELECT count(*) FROM expected "
    "WHERE NOT want_move AND tier_since = %(now)s",
    "moves expected": "SELECT count(*) FROM expected WHERE want_move",
    "tier changes": "SELECT count(*) FROM {change}",
    "members with a tier change": "SELECT count(DISTINCT member_id) FROM {change}",
    "tier changes that are wrong": """
        SELECT count(*) FROM {change} AS c
        JOIN expected AS e ON e.id = c.member_id
        LEFT JOIN {tier} AS f ON f.id = c.from_tier_id
        LEFT JOIN {tier} AS t ON t.id = c.to_tier_id
        WHERE NOT e.want_move OR c.kind <> 'review' OR c.created_at <> %(now)s
            OR coalesce(t.rank, -1) <> e.target OR c.qualifying_value <> e.value
            OR coalesce(f.rank, -1) <> CASE WHEN e.mix = 'up' THEN e.target - 1
                ELSE e.target + 1 END
            OR c.protected_until IS DISTINCT FROM e.tier_protected_until""",
    "members not in exactly their tier groups": """
        SELECT count(*) FROM expected AS e LEFT JOIN (
            SELECT ug.user_id, count(*) AS n, max(t.rank) AS top
            FROM {membership} AS ug JOIN {tier} AS t ON t.group_id = ug.group_id
            GROUP BY ug.user_id
        ) AS g ON g.user_id = e.user_id
        WHERE coalesce(g.n, 0) <> e.rank + 1 OR coalesce(g.top, -1) <> e.rank""",
}


def check(url, now):
    """Each check's count on one database, with every member's expected end state
    recomputed from scratch (their activity and their part of the mix)."""
    from bench.dataset import TIERS, tier_mix

    names = {**tables(), "mix": tier_mix("m.id")}
    params = {**review_params(now), "top": len(TIERS) - 1}
    prefix = EXPECTED.format(**names)
    with pg.connect(url, autocommit=True) as conn:
        return {
            what: conn.execute(prefix + sql.format(**names), params).fetchone()[0]
            for what, sql in CHECKS.items()
        }


def verify(label, found):
    """Problems with a run's result, as sentences (empty: it did the work right)."""
    expected = {
        "members in the wrong tier": 0,
        "members whose grace is wrongly set or not": 0,
        "graces started not ending after the grace days": 0,
        "moved members whose tier_since is not now": 0,
        "unmoved members whose tier_since is now": 0,
        "tier changes": found["moves expected"],
        "members with a tier change": found["moves expected"],
        "tier changes that are wrong": 0,
        "members not in exactly their tier groups": 0,
    }
    return [
        f"{label}: {what} = {found[what]}, expected {value}"
        for what, value in expected.items()
        if found[what] != value
    ]


FINGERPRINTS = {
    "members": """
        SELECT id / %(chunk)s, md5(string_agg(concat_ws(':', id,
            coalesce(tier_id::text, '-'), coalesce(tier_since::text, '-'),
            coalesce(tier_grace_until::text, '-'),
            coalesce(tier_protected_until::text, '-')), ',' ORDER BY id))
        FROM {member} GROUP BY 1 ORDER BY 1""",
    "tier changes": """
        SELECT member_id / %(chunk)s, md5(string_agg(concat_ws(':', member_id,
            coalesce(from_tier_id::text, '-'), coalesce(to_tier_id::text, '-'),
            kind, qualifying_value, reason, coalesce(actor_id::text, '-'),
            actor_name, coalesce(protected_until::text, '-'), created_at),
            ',' ORDER BY member_id, created_at, id))
        FROM {change} GROUP BY 1 ORDER BY 1""",
    "tier groups": """
        SELECT m.id / %(chunk)s, md5(string_agg(ug.user_id || ':' || ug.group_id,
            ',' ORDER BY ug.user_id, ug.group_id))
        FROM {membership} AS ug JOIN {member} AS m ON m.user_id = ug.user_id
        GROUP BY 1 ORDER BY 1""",
}


def fingerprints(url, chunk):
    """{what: [(chunk number, md5 of its rows)]}: the state the review leaves."""
    names = tables()
    with pg.connect(url, autocommit=True) as conn:
        # The same session time zone for both databases' text of timestamps.
        conn.execute("SET TIME ZONE 'UTC'")
        return {
            what: conn.execute(sql.format(**names), {"chunk": chunk}).fetchall()
            for what, sql in FINGERPRINTS.items()
        }


def count_changes(url):
    with pg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM {change}".format(**tables())
        ).fetchone()[0]


def check_settings():
    from oscar_loyalty.conf import loyalty_settings

    wanted = {
        "TIER_BASIS": "spend",
        "TIER_WINDOW": "rolling",
        "TIER_WINDOW_MONTHS": 12,
        "CONFIRM_AFTER_DAYS": None,
    }
    found = {name: getattr(loyalty_settings, name) for name in wanted}
    if found != wanted:
        raise SystemExit(f"tier_review: the raw SQL assumes {wanted}; found {found}")


def main(argv=None):
    args = parse_args(argv)
    members = max(round(FULL_SCALE_MEMBERS * args.scale), 1)
    _django.setup(args.database_url)
    _django.migrate("tier_review")
    check_settings()

    from django.db import connection
    from django.utils import timezone

    from bench import dataset
    from oscar_loyalty import rules
    from oscar_loyalty.conf import loyalty_settings

    chunk = loyalty_settings.TIER_REVIEW_CHUNK
    now = timezone.now().replace(microsecond=0)
    pg.pause_autovacuum(tables().values())
    dataset.populate_tiers(
        members=members, now=now, window_start=rules.tier_window_start(now)
    )
    connection.close()
    started = time.perf_counter()
    pg.recreate_database(args.raw_database_url, template=args.database_url)
    info(f"tier_review: copied the dataset in {time.perf_counter() - started:.1f} s")

    pg.checkpoint(args.raw_database_url)
    raw_seconds, raw_counts = review_with_raw_sql(args.raw_database_url, now, chunk)
    info(
        f"tier_review: raw SQL moved {raw_counts[0]} up and {raw_counts[1]} down, "
        f"started {raw_counts[2]} and cleared {raw_counts[3]} graces in "
        f"{raw_seconds:.1f} s"
    )

    pg.checkpoint(args.database_url)
    task_seconds, chunks = review_with_the_task(now)
    connection.close()
    changes = count_changes(args.database_url)
    info(
        f"tier_review: the task reviewed {members} members in {chunks} chunks, "
        f"{changes} changes, {task_seconds:.1f} s"
    )

    problems = []
    urls = {"task": args.database_url, "raw SQL": args.raw_database_url}
    prints = {}
    for label, url in urls.items():
        started = time.perf_counter()
        found = check(url, now)
        info(f"tier_review: {label}: {found}")
        problems += verify(label, found)
        prints[label] = fingerprints(url, chunk)
        info(
            f"tier_review: checked the {label} run in "
            f"{time.perf_counter() - started:.1f} s"
        )
    problems += pg.disagreements(prints["task"], prints["raw SQL"], "task and raw SQL")

    # A second review at the same moment finds nothing to do, on both.
    started = time.perf_counter()
    _seconds, _chunks = review_with_the_task(now)
    connection.close()
    again = count_changes(args.database_url) - changes
    if again:
        problems.append(f"task: a second review at the same now made {again} changes")
    problems += pg.disagreements(
        prints["task"], fingerprints(args.database_url, chunk), "task: second review"
    )
    _seconds, raw_again = review_with_raw_sql(args.raw_database_url, now, chunk)
    if any(raw_again):
        problems.append(f"raw SQL: a second review changed {raw_again}")
    info(f"tier_review: second reviews in {time.perf_counter() - started:.1f} s")

    emit("tier_review_members", members)
    if problems:
        for problem in problems:
            info(f"tier_review: WRONG: {problem}")
        for figure in (
            "tier_review_task_seconds",
            "tier_review_1m_seconds",
            "tier_review_raw_sql_seconds",
            "tier_review_vs_raw_sql_ratio",
            "tier_review_changes",
        ):
            emit(figure, FAILED)
        return 1
    emit("tier_review_task_seconds", f"{task_seconds:.1f}")
    if members >= FULL_SCALE_MEMBERS:
        emit("tier_review_1m_seconds", f"{task_seconds:.1f}")
    else:
        # Named for 1 M members: only a --scale 1 run measures it.
        emit("tier_review_1m_seconds", f"not measured ({members} members; --scale 1)")
    emit("tier_review_raw_sql_seconds", f"{raw_seconds:.1f}")
    emit("tier_review_vs_raw_sql_ratio", f"{task_seconds / raw_seconds:.2f}")
    emit("tier_review_changes", changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
