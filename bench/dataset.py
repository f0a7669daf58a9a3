"""A large points programme written straight into PostgreSQL with ``generate_series``.

Creating millions of rows through the services would take hours; these statements
write what the services would have written, consistently with the ledger's
invariants (each lot's ``remaining`` is the sum of its entries; each member's
``available`` the sum of its active lots' remainders and of its entries; every
posting has an entry), so ``find_drift`` finds nothing. The programme looks like
one migrated from another system: every lot was added by an ``adjust`` posting
("Imported balance") with one entry.

Lots are written in the order they were earned: the due lots (already past their
expiry date) first, oldest first, then the lots still valid; consecutive lots
belong to different members (lot ``g`` is member ``g mod members``'s), as lots
earned on the same day by many customers would.

Import after Django is set up; run on PostgreSQL only.
"""

import time

from django.contrib.auth import get_user_model
from django.db import connection

from bench import info
from oscar_loyalty.models import Entry, Lot, Member, Posting

LEDGER_MODELS = (Member, Lot, Posting, Entry)


def table(model):
    return connection.ops.quote_name(model._meta.db_table)


def _max_id(cursor, model):
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table(model)}")
    return cursor.fetchone()[0]


def _is_superuser(cursor):
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    return bool(row and row[0])


def _finish(cursor, fast, *, written, analysed):
    """After loading: the id sequences of the ``written`` models past their rows,
    foreign-key triggers back on, and the ``analysed`` tables vacuumed (visibility
    map set, as autovacuum would) and analysed."""
    for model in written:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
            f"(SELECT max(id) FROM {table(model)}))",
            [model._meta.db_table],
        )
    if fast:
        cursor.execute("SET session_replication_role = DEFAULT")
    for model in analysed:
        cursor.execute(f"VACUUM ANALYZE {table(model)}")


def populate(*, members, due_lots, valid_lots, now):
    """Add ``members`` members with ``due_lots`` lots past ``now`` and ``valid_lots``
    lots expiring after it; returns (first member id, last member id).

    Every member gets a user account. Foreign-key triggers are skipped while
    loading (``session_replication_role = replica``, when the role may) since the
    rows are consistent by construction; indexes are kept, as in a live shop.
    """
    User = get_user_model()
    if User._meta.db_table != "auth_user":
        raise RuntimeError("the dataset writes Django's auth.User rows only")
    lots = due_lots + valid_lots
    started = time.perf_counter()
    with connection.cursor() as cursor:
        fast = _is_superuser(cursor)
        if fast:
            cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        u0 = _max_id(cursor, User)
        m0 = _max_id(cursor, Member)
        l0 = _max_id(cursor, Lot)
        p0 = _max_id(cursor, Posting)
        e0 = _max_id(cursor, Entry)
        params = {
            "members": members,
            "due": due_lots,
            "valid": valid_lots,
            "lots": lots,
            "now": now,
            "u0": u0,
            "m0": m0,
            "l0": l0,
            "p0": p0,
            "e0": e0,
        }
        cursor.execute(
            """
            INSERT INTO auth_user (id, password, last_login, is_superuser, username,
                first_name, last_name, email, is_staff, is_active, date_joined)
            SELECT %(u0)s + g, '!', NULL, false, 'bench-' || (%(u0)s + g), '', '',
                'bench-' || (%(u0)s + g) || '@example.com', false, true,
                %(now)s - interval '2 years'
            FROM generate_series(1, %(members)s) AS g
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO {table(Member)} (id, user_id, number, channel, joined_at,
                available, held, pending, lifetime_earned, expiry_reminders)
            SELECT %(m0)s + g, %(u0)s + g, 'B' || lpad((%(m0)s + g)::text, 12, '0'),
                'import', %(now)s - interval '2 years', 0, 0, 0, 0, false
            FROM generate_series(1, %(members)s) AS g
            """,
            params,
        )
        info(f"dataset: {members} users and members")
        # Due lots expire between 30 days and 1 day ago, valid ones within 300
        # days; each lot was confirmed a year before its expiry date.
        cursor.execute(
            f"""
            INSERT INTO {table(Lot)} (id, member_id, source, status, points,
                remaining, reversed, created_at, confirmed_at, expires_at,
                order_number, order_line_id, rule, rule_version, reminded_days)
            SELECT %(l0)s + g, %(m0)s + 1 + (g - 1) %% %(members)s, 'adjust',
                'active', p, p, 0, e - interval '1 year', e - interval '1 year', e,
                '', NULL, '', 0, NULL
            FROM generate_series(1, %(lots)s) AS g,
                LATERAL (SELECT 50 + (g * 37) %% 451 AS p) AS points,
                LATERAL (
                    SELECT CASE WHEN g <= %(due)s
                        THEN %(now)s - interval '30 days'
                            + interval '29 days' * (g::float8 / greatest(%(due)s, 1))
                        ELSE %(now)s + interval '1 day' + interval '300 days'
                            * ((g - %(due)s)::float8 / greatest(%(valid)s, 1))
                    END AS e
                ) AS expiry
            """,
            params,
        )
        info(f"dataset: {lots} lots ({due_lots} due)")
        cursor.execute(
            f"""
            INSERT INTO {table(Posting)} (id, key, kind, member_id, created_at,
                order_number, reason, actor_id, actor_name, shortfall)
            SELECT %(p0)s + (id - %(l0)s), 'adjust:import:' || id, 'adjust',
                member_id, created_at, '', 'Imported balance', NULL, '', 0
            FROM {table(Lot)} WHERE id > %(l0)s
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO {table(Entry)} (id, posting_id, member_id, lot_id,
                available_change, pending_change)
            SELECT %(e0)s + (id - %(l0)s), %(p0)s + (id - %(l0)s), member_id, id,
                points, 0
            FROM {table(Lot)} WHERE id > %(l0)s
            """,
            params,
        )
        info(f"dataset: {lots} postings and entries")
        cursor.execute(
            f"""
            UPDATE {table(Member)} AS m
            SET available = t.total, lifetime_earned = t.total
            FROM (
                SELECT member_id, sum(points) AS total FROM {table(Lot)}
                WHERE id > %(l0)s GROUP BY member_id
            ) AS t
            WHERE m.id = t.member_id
            """,
            params,
        )
        _finish(
            cursor,
            fast,
            written=(
                User,
                *LEDGER_MODELS,
            ),
            analysed=(
                User,
                *LEDGER_MODELS,
            ),
        )
    info(f"dataset: written and analysed in {time.perf_counter() - started:.1f} s")
    return m0 + 1, m0 + members


def pause_autovacuum():
    """Autovacuum off on the ledger tables (:func:`bench.pg.pause_autovacuum`)."""
    from bench import pg

    pg.pause_autovacuum(table(model) for model in LEDGER_MODELS)


#: The tiers of :func:`populate_tiers`: (code, name, rank, threshold in money).
TIERS = (
    ("regular", "Regular", 0, 0),
    ("silver", "Silver", 1, 1000),
    ("gold", "Gold", 2, 5000),
    ("diamond", "Diamond", 3, 10000),
)
#: Order activity rows per member in :func:`populate_tiers`.
ACTIVITY_PER_MEMBER = 5


def _drawn(expression, seed, below):
    """SQL for a fixed draw in [0, below) from a hash of ``expression``."""
    return (
        f"mod(hashint8extended(({expression})::bigint, {seed}) & 2147483647, {below})"
    )


def tier_mix(member_id):
    """SQL naming the part of the tier mix of :func:`populate_tiers` a member is in.

    ``member_id``: an SQL expression (e.g. ``m.id``). A fixed hash of the id, so
    any check can tell, from scratch, what a review must do to each member. Parts
    of 100: ``up`` 5 (one tier below what they qualify for; no tier at all when
    they qualify for the lowest), ``grace`` 4 (one tier above, no grace yet),
    ``grace_after_protection`` 1 (the same, protection ended 5 days ago), ``down``
    2 (one above, grace ended 1–60 days ago), ``protected`` 1 (one above,
    protected for 1–180 more days), ``in_grace`` 2 (one above, grace ending in
    1–29 days), ``clear`` 1 (the tier they qualify for, grace still set),
    ``protected_same`` 1 (the tier they qualify for, protected), ``keep`` 83.
    "One above" stops at the top tier (such members are in the tier they qualify
    for, with their grace or protection dates).
    """
    bucket = _drawn(member_id, 5, 100)
    return f"""(CASE
        WHEN {bucket} < 5 THEN 'up'
        WHEN {bucket} < 9 THEN 'grace'
        WHEN {bucket} < 10 THEN 'grace_after_protection'
        WHEN {bucket} < 12 THEN 'down'
        WHEN {bucket} < 13 THEN 'protected'
        WHEN {bucket} < 15 THEN 'in_grace'
        WHEN {bucket} < 16 THEN 'clear'
        WHEN {bucket} < 17 THEN 'protected_same'
        ELSE 'keep'
    END)"""


def insert_activity(cursor, params):
    """:data:`ACTIVITY_PER_MEMBER` order activity rows per member (see
    :func:`populate_tiers`); ``params``: members, rows, first, a0 (the largest
    order activity id before) and now."""
    from oscar_loyalty.models import OrderActivity

    cursor.execute(
        f"""
        INSERT INTO {table(OrderActivity)} (id, member_id, order_number,
            placed_at, spend, refunded, confirmed_at, cancelled_at)
        SELECT %(a0)s + g, %(first)s + mod(g - 1, %(members)s),
            'TR' || (%(a0)s + g), placed, spend,
            CASE WHEN fate BETWEEN 14 AND 21
                THEN trunc(spend * {_drawn("g", 4, 100)} / 100, 2) ELSE 0 END,
            CASE WHEN fate >= 12
                THEN least(placed + interval '14 days', %(now)s) END,
            CASE WHEN fate BETWEEN 10 AND 13
                THEN least(placed + interval '20 days', %(now)s) END
        FROM generate_series(1, %(rows)s) AS g,
            LATERAL (
                SELECT %(now)s - interval '548 days'
                    * ({_drawn("g", 1, 1000000)} / 1000000.0) AS placed,
                ({_drawn("g", 2, 300001)} / 100.0)::numeric(14, 2) AS spend,
                {_drawn("g", 3, 100)} AS fate
            ) AS drawn
        """,
        params,
    )
    info(f"dataset: {params['rows']} order activity rows")


def populate_tiers(*, members, now, window_start):
    """A tiers programme: ``members`` members (and users, by :func:`populate` with no
    lots), four tiers with their groups, :data:`ACTIVITY_PER_MEMBER` order activity
    rows per member and a current tier for each; returns (first, last member id).

    Tiers (:data:`TIERS`): Regular 0, Silver 1,000, Gold 5,000, Diamond 10,000
    (ranks 0–3), each with its group ``loyalty:<code>``. Activity: order numbers
    ``TR<id>``, placed at a fixed-hash moment of the last 18 months (about two
    thirds of them inside a 12-month window), spend 0–3,000.00; 10 % never
    confirmed, 2 % cancelled before and 2 % after being confirmed (confirmed 14
    days after being placed, ``now`` at the latest), 8 % refunded in part. Row
    ``g`` is member ``g mod members``'s, so a member's rows are far apart.

    Each member's current tier follows :func:`tier_mix` from what they qualify for
    at ``now`` (confirmed, not cancelled, spend less refunds, placed from
    ``window_start`` to ``now``); members are in their tier's group and every lower
    tier's (cumulative), as the shop keeps them. Tiers are written as rows (no
    offers are made for them: the review does not use offers).
    """
    from django.contrib.auth.models import Group

    from oscar_loyalty.models import OrderActivity, Tier

    first, last = populate(members=members, due_lots=0, valid_lots=0, now=now)
    Membership = get_user_model().groups.through
    started = time.perf_counter()
    with connection.cursor() as cursor:
        fast = _is_superuser(cursor)
        if fast:
            cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        g0 = _max_id(cursor, Group)
        t0 = _max_id(cursor, Tier)
        a0 = _max_id(cursor, OrderActivity)
        for offset, (code, name, rank, threshold) in enumerate(TIERS, start=1):
            cursor.execute(
                f"INSERT INTO {table(Group)} (id, name) VALUES (%s, %s)",
                [g0 + offset, f"loyalty:{code}"],
            )
            cursor.execute(
                f"""
                INSERT INTO {table(Tier)} (id, code, name, rank, threshold,
                    points_multiplier, discount_percent, free_shipping, badge, colour,
                    description, group_id)
                VALUES (%s, %s, %s, %s, %s, 1, 0, false, '', '#6c757d', '', %s)
                """,
                [t0 + offset, code, name, rank, threshold, g0 + offset],
            )
        params = {
            "members": members,
            "rows": members * ACTIVITY_PER_MEMBER,
            "first": first,
            "last": last,
            "a0": a0,
            "now": now,
            "window_start": window_start,
        }
        insert_activity(cursor, params)

        def days(below):
            return _drawn("m.id", 6, below)

        cursor.execute(
            f"""
            UPDATE {table(Member)} AS m SET
                tier_id = placed.tier_id,
                tier_since = CASE WHEN placed.tier_id IS NOT NULL THEN %(now)s
                    - interval '1 day' * (1 + {_drawn("m.id", 7, 700)}) END,
                tier_grace_until = CASE placed.mix
                    WHEN 'down' THEN %(now)s - interval '1 day' * (1 + {days(60)})
                    WHEN 'in_grace' THEN %(now)s + interval '1 day' * (1 + {days(29)})
                    WHEN 'clear' THEN %(now)s + interval '1 day' * (1 + {days(29)})
                    END,
                tier_protected_until = CASE placed.mix
                    WHEN 'grace_after_protection' THEN %(now)s - interval '5 days'
                    WHEN 'protected' THEN %(now)s + interval '1 day' * (1 + {days(180)})
                    WHEN 'protected_same'
                        THEN %(now)s + interval '1 day' * (1 + {days(180)})
                    END
            FROM (
                SELECT m.id, drawn.mix, t.id AS tier_id
                FROM {table(Member)} AS m
                LEFT JOIN (
                    SELECT member_id, sum(spend - refunded) AS value
                    FROM {table(OrderActivity)}
                    WHERE confirmed_at IS NOT NULL AND cancelled_at IS NULL
                        AND placed_at >= %(window_start)s AND placed_at <= %(now)s
                    GROUP BY member_id
                ) AS v ON v.member_id = m.id
                CROSS JOIN LATERAL (
                    SELECT max(rank) AS target FROM {table(Tier)}
                    WHERE threshold <= coalesce(v.value, 0)
                ) AS reached
                CROSS JOIN LATERAL (SELECT {tier_mix("m.id")} AS mix) AS drawn
                CROSS JOIN LATERAL (
                    SELECT least(reached.target + CASE
                        WHEN drawn.mix = 'up' THEN -1
                        WHEN drawn.mix IN ('grace', 'grace_after_protection', 'down',
                            'protected', 'in_grace') THEN 1
                        ELSE 0 END, {len(TIERS) - 1}) AS rank
                ) AS current
                LEFT JOIN {table(Tier)} AS t ON t.rank = current.rank
                WHERE m.id BETWEEN %(first)s AND %(last)s
            ) AS placed
            WHERE m.id = placed.id
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO {table(Membership)} (user_id, group_id)
            SELECT m.user_id, lower_tier.group_id
            FROM {table(Member)} AS m
            JOIN {table(Tier)} AS t ON t.id = m.tier_id
            JOIN {table(Tier)} AS lower_tier ON lower_tier.rank <= t.rank
            WHERE m.id BETWEEN %(first)s AND %(last)s
            """,
            params,
        )
        info("dataset: members' tiers and tier groups")
        _finish(
            cursor,
            fast,
            written=(
                Group,
                Tier,
                OrderActivity,
                Membership,
            ),
            analysed=(
                Group,
                Tier,
                Member,
                OrderActivity,
                Membership,
            ),
        )
    seconds = time.perf_counter() - started
    info(f"dataset: tiers written and analysed in {seconds:.1f} s")
    return first, last


def populate_scoring(*, members, now):
    """A shop to score: ``members`` members (and users, by :func:`populate` with
    no lots) with :data:`ACTIVITY_PER_MEMBER` order activity rows each (see
    :func:`insert_activity`: over the last 18 months, 10 % never confirmed, 4 %
    cancelled, 8 % refunded in part); returns (first, last member id).

    By fixed hashes of the member id: 90 % agreed to profiling; joined 30-730
    days ago; 60 % signed in 0-399 days ago (the others never); half a
    redemption per member on average (``redeem`` postings over the last year)
    and a third of an action reward (check-ins over the last year).
    """
    from oscar_loyalty.models import ActionAward, OrderActivity

    first, last = populate(members=members, due_lots=0, valid_lots=0, now=now)
    User = get_user_model()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        fast = _is_superuser(cursor)
        if fast:
            cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        params = {
            "members": members,
            "rows": members * ACTIVITY_PER_MEMBER,
            "redeems": members // 2,
            "awards": members // 3,
            "first": first,
            "last": last,
            "a0": _max_id(cursor, OrderActivity),
            "p0": _max_id(cursor, Posting),
            "w0": _max_id(cursor, ActionAward),
            "now": now,
        }
        insert_activity(cursor, params)
        cursor.execute(
            f"""
            UPDATE {table(Member)} AS m SET
                consent_profiling = {_drawn("m.id", 8, 100)} < 90,
                joined_at = %(now)s - interval '1 day' * (30 + {_drawn("m.id", 9, 701)})
            WHERE m.id BETWEEN %(first)s AND %(last)s
            """,
            params,
        )
        cursor.execute(
            f"""
            UPDATE {table(User)} AS u SET last_login = CASE
                WHEN {_drawn("m.id", 10, 100)} < 60
                THEN %(now)s - interval '1 day' * {_drawn("m.id", 11, 400)} END
            FROM {table(Member)} AS m
            WHERE m.user_id = u.id AND m.id BETWEEN %(first)s AND %(last)s
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO {table(Posting)} (id, key, kind, member_id, created_at,
                order_number, reason, actor_id, actor_name, shortfall)
            SELECT %(p0)s + g, 'redeem:bench:' || g, 'redeem',
                %(first)s + {_drawn("g", 12, "%(members)s")},
                %(now)s - interval '1 hour' * {_drawn("g", 13, 8760)},
                '', '', NULL, '', 0
            FROM generate_series(1, %(redeems)s) AS g
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO {table(ActionAward)} (id, member_id, action, key, points,
                object_id, created_at, reversed_at)
            SELECT %(w0)s + g, %(first)s + {_drawn("g", 14, "%(members)s")},
                'checkin', 'checkin:bench:' || g, 5, NULL,
                %(now)s - interval '1 hour' * {_drawn("g", 15, 8760)}, NULL
            FROM generate_series(1, %(awards)s) AS g
            """,
            params,
        )
        info(
            f"dataset: consent, sign-ins, {params['redeems']} redemptions and "
            f"{params['awards']} action rewards"
        )
        _finish(
            cursor,
            fast,
            written=(
                OrderActivity,
                Posting,
                ActionAward,
            ),
            analysed=(
                User,
                Member,
                OrderActivity,
                Posting,
                ActionAward,
            ),
        )
    info(f"dataset: scoring data written in {time.perf_counter() - started:.1f} s")
    return first, last
