"""The PostgreSQL databases of the benchmarks: names, a migrated template, copies.

Every database a benchmark drops or creates has a name ending in ``_bench``, so a
``DATABASE_URL`` naming the suite's database (``.../loyalty``) or any other never
loses data to a benchmark. Migrating PostgreSQL takes more than a minute, so it is
done into a template database (``loyalty_bench`` by default), kept between runs
for as long as the migration files do not change; each benchmark then works on a
copy of its own (``loyalty_<tag>_bench``), made in a second by
``CREATE DATABASE ... TEMPLATE`` and dropped afterwards.
"""

import os
import subprocess
import sys
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from bench import ROOT, info

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/loyalty_bench"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
# Never dropped or created, whatever DATABASE_URL says.
PROTECTED_DATABASES = frozenset(
    {"postgres", "root", "test", "loyalty", "template0", "template1"}
)
BENCH_SUFFIX = "_bench"

#: The migrated template of this process, or why there is none.
_template = {}


class Unavailable(Exception):
    """PostgreSQL cannot be used; the message says why (it becomes the figure)."""


def postgres_url():
    """``DATABASE_URL`` when it names PostgreSQL, else the default."""
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme.lower() in POSTGRES_SCHEMES:
        return url
    if url:
        info(f"DATABASE_URL is not PostgreSQL; using {DEFAULT_POSTGRES_URL}")
    return DEFAULT_POSTGRES_URL


def database_name(url):
    return unquote(urlsplit(url).path.lstrip("/"))


def bench_database_url(url, tag=None):
    """The URL with a database name ending in ``_bench``.

    ``.../loyalty`` (the suite's) becomes ``.../loyalty_bench``; with a ``tag``,
    ``.../loyalty_<tag>_bench``: the copy one benchmark works on.
    """
    parts = urlsplit(url)
    name = database_name(url) or "loyalty"
    name = name.removesuffix(BENCH_SUFFIX)
    if tag:
        name = f"{name}_{tag}"
    return urlunsplit(parts._replace(path=f"/{name}{BENCH_SUFFIX}"))


def where(url):
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def maintenance_connection(url):
    """An autocommit connection to the ``postgres`` database of ``url``'s server."""
    try:
        import psycopg
    except ImportError:
        raise Unavailable(
            "psycopg is not installed (pip install 'psycopg[binary]')"
        ) from None
    parts = urlsplit(url)
    # The maintenance database, without Django-only query options.
    maintenance = urlunsplit(parts._replace(path="/postgres", query=""))
    try:
        return psycopg.connect(maintenance, connect_timeout=5, autocommit=True)
    except psycopg.Error as exc:
        raise Unavailable(
            f"no PostgreSQL at {where(url)}: {' '.join(str(exc).split())}"
        ) from None


def connect(url, **kwargs):
    """A psycopg connection to the database ``url`` names (Django options dropped)."""
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(urlunsplit(parts._replace(query="")), **kwargs)


def _checked_name(url):
    name = database_name(url)
    if name in PROTECTED_DATABASES or not name.endswith(BENCH_SUFFIX):
        raise Unavailable(f"refusing to drop or create the database {name!r}")
    return name


def recreate_database(url, *, template=None):
    """Drop and create the database ``url`` names (a copy of ``template``'s)."""
    import psycopg
    from psycopg import sql

    name = _checked_name(url)
    with maintenance_connection(url) as conn:
        try:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            else:
                # FILE_COPY copies the files at once (WAL_LOG, PostgreSQL 15's
                # default, would log every block of a large database).
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(name), sql.Identifier(database_name(template))
                    )
                )
        except psycopg.Error as exc:
            raise Unavailable(
                f"could not create {name!r}: {' '.join(str(exc).split())}"
            ) from None


def drop_database(url):
    from psycopg import sql

    name = _checked_name(url)
    try:
        with maintenance_connection(url) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
    except Unavailable as exc:
        info(f"could not drop {name!r}: {exc}")


def migrated_template():
    """The URL of the migrated template database; :class:`Unavailable` if none.

    Checked once per process: a template whose migrations are today's (see
    :mod:`bench._migrate`) is used as it is, otherwise it is made again and the
    first benchmark that needs PostgreSQL pays for the migrations.
    """
    if "url" in _template:
        return _template["url"]
    if "reason" in _template:
        raise Unavailable(_template["reason"])
    url = bench_database_url(postgres_url())
    try:
        maintenance_connection(url).close()
        if _run_migrate(url, "--reuse") != 0:
            info(f"postgres: making the template {database_name(url)!r}")
            recreate_database(url)
            started = time.perf_counter()
            if _run_migrate(url) != 0:
                raise Unavailable(f"migrating {database_name(url)!r} failed")
            info(f"postgres: template made in {time.perf_counter() - started:.1f} s")
    except Unavailable as exc:
        _template["reason"] = str(exc)
        raise
    _template["url"] = url
    return url


def _run_migrate(url, *options):
    command = [sys.executable, "-m", "bench._migrate", "--database-url", url, *options]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def fresh_copy(tag):
    """A new database ``loyalty_<tag>_bench``, a copy of the migrated template."""
    template = migrated_template()
    url = bench_database_url(template, tag)
    recreate_database(url, template=template)
    return url


# Helpers of the workers that compare a task with its raw SQL bound ------------------


def checkpoint(url):
    """Flush the database's dirty pages, so the next timed run does not pay for
    the writes of the one before."""
    with connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def pause_autovacuum(table_names):
    """Autovacuum off on ``table_names`` of Django's database: two runs on two
    copies are compared, and a vacuum of one during the other would tilt the
    comparison on a two-core machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        for name in table_names:
            cursor.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")


def disagreements(first, second, labels):
    """Sentences for the fingerprints (``{what: [(chunk, md5)]}``) that differ
    between two databases; empty when they agree."""
    problems = []
    for what, rows in first.items():
        mine, other = dict(rows), dict(second[what])
        differing = sorted(
            chunk
            for chunk in mine.keys() | other.keys()
            if mine.get(chunk) != other.get(chunk)
        )
        if differing:
            problems.append(
                f"{labels}: {what} differ in {len(differing)} chunk(s) of member "
                f"ids, first {differing[0]}"
            )
    return problems
