"""The scoring figures; run by :mod:`bench.scoring` in a subprocess.

``python -m bench._scoring_worker --database-url URL --raw-database-url RAW
--scale S``:

1. writes a shop to score (:func:`bench.dataset.populate_scoring`) into ``URL``:
   ``S`` × 1 M members with five order-activity rows each (``S`` × 5 M orders),
   90 % of them agreeing to profiling, sign-ins, redemptions and check-ins;
2. copies ``URL`` to ``RAW`` (``CREATE DATABASE ... TEMPLATE``);
3. on ``RAW``, times the raw SQL bound, written apart from
   :mod:`oscar_loyalty.scoring`: one statement aggregates every member's
   orders, redemptions and check-ins once into a temporary table
   (:data:`SIGNALS`), a second takes the cut points with ordered-set
   aggregates and writes the run's rows (:data:`SCORES`);
4. on ``URL``, times the real task: ``oscar_loyalty.tasks.score_members``
   (eager): the consent sweep, the three statements of ``scoring.run``, the
   run's summary, the win-back rules and the history thinning;
5. checks that both agree row for row (hashes of the run's rows per chunk of
   member ids), that every member who agreed to profiling was scored and no
   one else, and that the task run again (a retry) changes nothing.

A ``CHECKPOINT`` precedes each timed run, so neither pays for the other's writes.
"""

import argparse
import sys
import time
from datetime import timedelta

from bench import _django, emit, info, pg

FULL_SCALE_MEMBERS = 1_000_000
FAILED = "failed (wrong result, see stderr)"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._scoring_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--raw-database-url", required=True)
    parser.add_argument("--scale", type=float, default=0.1)
    return parser.parse_args(argv)


def tables():
    from django.contrib.auth import get_user_model

    from bench.dataset import table
    from oscar_loyalty.models import (
        ActionAward,
        Member,
        MemberScore,
        OrderActivity,
        Posting,
    )

    return {
        "member": table(Member),
        "score": table(MemberScore),
        "activity": table(OrderActivity),
        "posting": table(Posting),
        "award": table(ActionAward),
        "user": table(get_user_model()),
    }


DAYS = "(date_part('epoch', ({later}) - ({earlier})) / 86400.0)"


def days(later, earlier):
    return DAYS.format(later=later, earlier=earlier)


SIGNALS = """
CREATE TEMP TABLE raw_signals AS
WITH scored AS (
    SELECT m.id, m.joined_at, u.last_login FROM {member} AS m
    JOIN {user} AS u ON u.id = m.user_id
    WHERE m.consent_profiling AND u.is_active
), orders AS (
    SELECT member_id, min(placed_at) AS first_order, max(placed_at) AS last_order,
        count(*) AS orders,
        count(*) FILTER (WHERE placed_at > %(recent)s) AS recent_orders,
        count(*) FILTER (WHERE placed_at > %(previous)s AND placed_at <= %(recent)s)
            AS previous_orders,
        sum(spend - refunded) FILTER (WHERE placed_at > %(window)s) AS spend,
        max(placed_at) FILTER (WHERE confirmed_at IS NOT NULL) AS last_confirmed,
        count(confirmed_at) AS confirmed,
        sum(spend - refunded) FILTER (WHERE confirmed_at IS NOT NULL) AS monetary
    FROM {activity} WHERE cancelled_at IS NULL AND placed_at <= %(now)s
    GROUP BY member_id
), redeems AS (
    SELECT member_id, max(created_at) AS last_redeem,
        count(*) FILTER (WHERE created_at > %(recent)s) AS recent,
        count(*) FILTER (WHERE created_at > %(previous)s AND created_at <= %(recent)s)
            AS previous
    FROM {posting} WHERE kind = 'redeem' AND created_at <= %(now)s
    GROUP BY member_id
), awards AS (
    SELECT member_id, max(created_at) AS last_award FROM {award}
    WHERE created_at <= %(now)s GROUP BY member_id
)
SELECT c.id AS member_id, c.joined_at,
    {since_interaction} AS idle_days,
    o.last_order,
    CASE WHEN o.orders >= 2
        THEN greatest({order_span} / (o.orders - 1), 1.0)
        ELSE %(usual_default)s END AS usual_interval,
    coalesce(o.recent_orders, 0) AS recent_orders,
    coalesce(o.previous_orders, 0) AS previous_orders,
    coalesce(o.spend, 0) AS spend,
    coalesce(o.confirmed, 0) AS confirmed, coalesce(o.monetary, 0) AS monetary,
    -{recency} AS recency,
    coalesce(r.recent, 0) AS recent_redeems,
    coalesce(r.previous, 0) AS previous_redeems
FROM scored AS c
LEFT JOIN orders AS o ON o.member_id = c.id
LEFT JOIN redeems AS r ON r.member_id = c.id
LEFT JOIN awards AS a ON a.member_id = c.id
CROSS JOIN LATERAL (
    SELECT greatest(c.joined_at, o.last_order, a.last_award, r.last_redeem,
        c.last_login) AS last_interaction
) AS t
"""

SCORES = """
INSERT INTO {score} (member_id, scored_at, activity_segment, value_segment,
    recency_score, frequency_score, monetary_score, rfm_segment, churn_risk)
WITH cuts AS (
    SELECT
        percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY recency)
            FILTER (WHERE confirmed > 0) AS r,
        percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY confirmed)
            FILTER (WHERE confirmed > 0) AS f,
        percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY monetary)
            FILTER (WHERE confirmed > 0) AS m,
        percentile_disc(0.2) WITHIN GROUP (ORDER BY spend DESC)
            FILTER (WHERE spend > 0) AS top,
        percentile_disc(0.2) WITHIN GROUP (ORDER BY spend)
            FILTER (WHERE spend > 0) AS bottom
    FROM raw_signals
), graded AS (
    SELECT s.*, c.top, c.bottom,
        CASE WHEN s.confirmed > 0 THEN 1 {r_beyond} END AS r,
        CASE WHEN s.confirmed > 0 THEN 1 {f_beyond} END AS f,
        CASE WHEN s.confirmed > 0 THEN 1 {m_beyond} END AS m,
        floor(
            %(w_interval)s * least(1.0, greatest(0.0,
                ({since_order} / s.usual_interval - 1.0) / 2.0))
            + %(w_frequency)s * CASE WHEN s.previous_orders > 0 THEN greatest(0.0,
                1.0 - s.recent_orders::float8 / s.previous_orders) ELSE 0.0 END
            + %(w_points)s * CASE WHEN s.previous_redeems > 0 THEN greatest(0.0,
                1.0 - s.recent_redeems::float8 / s.previous_redeems) ELSE 0.0 END
            + %(w_visits)s * least(1.0, s.idle_days / %(dormant)s)
            + 0.5)::integer AS risk
    FROM raw_signals AS s CROSS JOIN cuts AS c
)
SELECT member_id, %(now)s,
    CASE WHEN idle_days <= %(active)s THEN 'active'
         WHEN idle_days <= %(cooling)s THEN 'cooling'
         WHEN idle_days <= %(at_risk)s THEN 'at_risk' ELSE 'dormant' END,
    CASE WHEN spend <= 0 THEN 'none' WHEN spend >= top THEN 'top'
         WHEN spend <= bottom THEN 'bottom' ELSE 'middle' END,
    r, f, m,
    CASE WHEN confirmed = 0 THEN 'none'
         WHEN r >= 4 AND confirmed = 1 THEN 'new'
         WHEN r >= 4 AND (f + m + 1) / 2 >= 4 THEN 'champions'
         WHEN r >= 3 AND (f + m + 1) / 2 >= 3 THEN 'loyal'
         WHEN r >= 3 THEN 'potential'
         WHEN r = 2 AND (f + m + 1) / 2 >= 3 THEN 'at_risk'
         WHEN r = 2 THEN 'hibernating'
         WHEN (f + m + 1) / 2 >= 4 THEN 'cant_lose'
         WHEN (f + m + 1) / 2 = 3 THEN 'hibernating'
         ELSE 'lost' END,
    risk
FROM graded ORDER BY member_id
"""


def raw_statements():
    """The bound, written apart from :mod:`oscar_loyalty.scoring`: the members'
    measures into a temporary table, then the cut points and the rows."""

    def beyond(metric, column):
        return "".join(
            f" + CASE WHEN s.{column} > c.{metric}[{q}] THEN 1 ELSE 0 END"
            for q in (1, 2, 3, 4)
        )

    names = tables()
    return (
        SIGNALS.format(
            **names,
            recency=days("%(now)s", "o.last_confirmed"),
            since_interaction=days("%(now)s", "t.last_interaction"),
            order_span=days("o.last_order", "o.first_order"),
        ),
        SCORES.format(
            **names,
            since_order=days("%(now)s", "coalesce(s.last_order, s.joined_at)"),
            r_beyond=beyond("r", "recency"),
            f_beyond=beyond("f", "confirmed"),
            m_beyond=beyond("m", "monetary"),
        ),
    )


def raw_params(now):
    from oscar_loyalty import scoring
    from oscar_loyalty.conf import loyalty_settings

    active, cooling, at_risk = loyalty_settings.ACTIVITY_DAYS
    period = timedelta(days=loyalty_settings.CHURN_PERIOD_DAYS)
    weights = loyalty_settings.CHURN_WEIGHTS
    return {
        "now": now,
        "recent": now - period,
        "previous": now - 2 * period,
        "window": scoring.window_start(now),
        "active": float(active),
        "cooling": float(cooling),
        "at_risk": float(at_risk),
        "dormant": float(at_risk),
        "usual_default": float(cooling),
        **{f"w_{name}": weight for name, weight in weights.items()},
    }


def score_with_raw_sql(url, now):
    signals, scores = raw_statements()
    params = raw_params(now)
    with pg.connect(url) as conn:  # one transaction, as the task's
        conn.execute("SET max_parallel_workers_per_gather = 0")
        started = time.perf_counter()
        conn.execute(signals, params)
        conn.execute(scores, params)
        conn.commit()
        return time.perf_counter() - started


def score_with_the_task(now):
    from oscar_loyalty import tasks

    started = time.perf_counter()
    members = tasks.score_members.delay(now.isoformat()).get()
    return time.perf_counter() - started, members


FINGERPRINTS = {
    "history rows": """
        SELECT member_id / %(chunk)s, md5(string_agg(concat_ws(':', member_id,
            activity_segment, value_segment, rfm_segment,
            coalesce(recency_score::text, '-'), coalesce(frequency_score::text, '-'),
            coalesce(monetary_score::text, '-'), churn_risk), ',' ORDER BY member_id))
        FROM {score} WHERE scored_at = %(now)s GROUP BY 1 ORDER BY 1""",
}

COUNTS = {
    "scored": "SELECT count(*) FROM {score} WHERE scored_at = %(now)s",
    "agreed": """SELECT count(*) FROM {member} AS m JOIN {user} AS u
        ON u.id = m.user_id WHERE m.consent_profiling AND u.is_active""",
    "members scored who did not agree": """SELECT count(*) FROM {score} AS s
        JOIN {member} AS m ON m.id = s.member_id WHERE NOT m.consent_profiling""",
}


def fingerprints(url, now, chunk):
    names = tables()
    with pg.connect(url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return {
            what: conn.execute(
                sql.format(**names), {"chunk": chunk, "now": now}
            ).fetchall()
            for what, sql in FINGERPRINTS.items()
        }


def counts(url, now):
    names = tables()
    with pg.connect(url, autocommit=True) as conn:
        found = {
            what: conn.execute(sql.format(**names), {"now": now}).fetchone()[0]
            for what, sql in COUNTS.items()
        }
        found["segments"] = dict(
            conn.execute(
                "SELECT rfm_segment, count(*) FROM {score} WHERE scored_at = %(now)s "
                "GROUP BY 1 ORDER BY 1".format(**names),
                {"now": now},
            ).fetchall()
        )
        return found


def main(argv=None):
    args = parse_args(argv)
    members = max(round(FULL_SCALE_MEMBERS * args.scale), 1)
    _django.setup(args.database_url)
    _django.migrate("scoring")

    from django.db import connection
    from django.utils import timezone

    from bench import dataset

    chunk = 50_000  # member ids per fingerprint
    now = timezone.now().replace(microsecond=0)
    pg.pause_autovacuum(tables().values())
    dataset.populate_scoring(members=members, now=now)
    connection.close()
    started = time.perf_counter()
    pg.recreate_database(args.raw_database_url, template=args.database_url)
    info(f"scoring: copied the dataset in {time.perf_counter() - started:.1f} s")

    pg.checkpoint(args.raw_database_url)
    raw_seconds = score_with_raw_sql(args.raw_database_url, now)
    info(f"scoring: raw SQL scored in {raw_seconds:.1f} s")

    pg.checkpoint(args.database_url)
    task_seconds, scored = score_with_the_task(now)
    connection.close()
    info(f"scoring: the task scored {scored} members in {task_seconds:.1f} s")

    problems = []
    found = {}
    for label, url in (("task", args.database_url), ("raw SQL", args.raw_database_url)):
        found[label] = counts(url, now)
        info(f"scoring: {label}: {found[label]}")
        if found[label]["scored"] != found[label]["agreed"]:
            problems.append(
                f"{label}: {found[label]['scored']} scored, "
                f"{found[label]['agreed']} agreed to profiling"
            )
        if found[label]["members scored who did not agree"]:
            problems.append(f"{label}: members scored without consent")
    prints = fingerprints(args.database_url, now, chunk)
    problems += pg.disagreements(
        prints, fingerprints(args.raw_database_url, now, chunk), "task and raw SQL"
    )

    # Scoring again at the same moment (a retried run) changes nothing.
    started = time.perf_counter()
    again, _members = score_with_the_task(now)
    connection.close()
    problems += pg.disagreements(
        prints, fingerprints(args.database_url, now, chunk), "task: second run"
    )
    info(f"scoring: second run and checks in {time.perf_counter() - started:.1f} s")

    emit("scoring_members", members)
    emit("scoring_orders", members * dataset.ACTIVITY_PER_MEMBER)
    if problems:
        for problem in problems:
            info(f"scoring: WRONG: {problem}")
        for figure in (
            "scoring_task_seconds",
            "scoring_1m_members_seconds",
            "scoring_raw_sql_seconds",
            "scoring_vs_raw_sql_ratio",
        ):
            emit(figure, FAILED)
        return 1
    emit("scoring_task_seconds", f"{task_seconds:.1f}")
    if members >= FULL_SCALE_MEMBERS:
        emit("scoring_1m_members_seconds", f"{task_seconds:.1f}")
    else:
        emit(
            "scoring_1m_members_seconds",
            f"not measured ({members} members; --scale 1)",
        )
    emit("scoring_raw_sql_seconds", f"{raw_seconds:.1f}")
    emit("scoring_vs_raw_sql_ratio", f"{task_seconds / raw_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
