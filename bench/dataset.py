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
        for model in (User, *LEDGER_MODELS):
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                f"(SELECT max(id) FROM {table(model)}))",
                [model._meta.db_table],
            )
        if fast:
            cursor.execute("SET session_replication_role = DEFAULT")
        for model in (User, *LEDGER_MODELS):
            cursor.execute(f"VACUUM ANALYZE {table(model)}")
    info(f"dataset: written and analysed in {time.perf_counter() - started:.1f} s")
    return m0 + 1, m0 + members


def pause_autovacuum():
    """Autovacuum off on the ledger tables (see the expiry benchmark: two runs on
    two databases are compared, and a vacuum of one during the other would tilt the
    comparison on a two-core machine)."""
    with connection.cursor() as cursor:
        for model in LEDGER_MODELS:
            cursor.execute(
                f"ALTER TABLE {table(model)} SET (autovacuum_enabled = false)"
            )
