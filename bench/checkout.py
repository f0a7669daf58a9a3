"""``checkout``: how long placing one order takes through Oscar's checkout views.

Figures, per database (``sqlite``, then ``postgres``):

* ``checkout_place_order_ms_<db>``: median milliseconds of one order (basket →
  shipping address → preview → place order) over ``--scale`` orders, after warm-ups;
* ``checkout_queries_per_order_<db>``: SQL queries of one such order.

Django's settings can be configured once per process, so each database is measured
by a worker subprocess (:mod:`bench._checkout_worker`) on a fresh database of its own:
SQLite in a temporary directory; PostgreSQL at ``DATABASE_URL`` (or
:data:`DEFAULT_POSTGRES_URL`), dropped and created again before each run.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from bench import ROOT, emit, info

DEFAULT_SCALE = 30
WARMUP = 3
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/loyalty_bench"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
# Never dropped or created, whatever DATABASE_URL says.
PROTECTED_DATABASES = frozenset({"postgres", "root", "test", "template0", "template1"})
BENCH_SUFFIX = "_bench"
FIGURE = re.compile(r"^[a-z0-9_]+: ")
FIGURES = ("checkout_place_order_ms", "checkout_queries_per_order")


def run(args):
    scale = args.scale or DEFAULT_SCALE
    status = 0
    with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'checkout.sqlite3'}"
        status = max(status, measure("sqlite", sqlite_url, scale, tmp))

        url = bench_database_url(postgres_url())
        reason = recreate_postgres_database(url)
        if reason:
            for figure in FIGURES:
                emit(f"{figure}_postgres", f"skipped ({reason})")
        else:
            status = max(status, measure("postgres", url, scale, tmp))
    return status


def postgres_url():
    """``DATABASE_URL`` when it names PostgreSQL, else the default."""
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme.lower() in POSTGRES_SCHEMES:
        return url
    if url:
        info(f"DATABASE_URL is not PostgreSQL; using {DEFAULT_POSTGRES_URL}")
    return DEFAULT_POSTGRES_URL


def bench_database_url(url):
    """The URL with a database name ending in ``_bench``.

    The benchmark drops its database before each run, so it only ever uses a name of
    its own: ``.../loyalty`` (the suite's) becomes ``.../loyalty_bench``.
    """
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/")) or "loyalty"
    if not name.endswith(BENCH_SUFFIX):
        name += BENCH_SUFFIX
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_postgres_database(url):
    """Drop and create the database ``url`` names; the reason when that fails."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    if name in PROTECTED_DATABASES:
        return f"refusing to recreate the database {name!r}"
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    # The maintenance database, without Django-only query options.
    maintenance = urlunsplit(parts._replace(path="/postgres", query=""))
    try:
        with psycopg.connect(maintenance, connect_timeout=5, autocommit=True) as conn:
            info(f"postgres: recreating the database {name!r} at {where}")
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        return f"no PostgreSQL at {where}: {' '.join(str(exc).split())}"
    return None


def measure(label, database_url, scale, tmp):
    """Run the worker for one database and pass its figures on; 0 when it worked."""
    info(f"{label}: migrating a fresh database and placing {WARMUP}+{scale} orders")
    env = {
        **os.environ,
        "DJANGO_MEDIA_ROOT": str(Path(tmp) / f"media-{label}"),
        "EXAMPLE_SHOP_VAR_DIR": tmp,
    }
    command = [
        sys.executable,
        "-m",
        "bench._checkout_worker",
        "--database-url",
        database_url,
        "--label",
        label,
        "--scale",
        str(scale),
        "--warmup",
        str(WARMUP),
    ]
    result = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    printed = set()
    for line in result.stdout.splitlines():
        if FIGURE.match(line):
            print(line, flush=True)
            printed.add(line.split(":", 1)[0])
        elif line.strip():
            info(f"{label} worker: {line}")
    if result.returncode == 0:
        return 0
    for figure in FIGURES:
        if f"{figure}_{label}" not in printed:
            emit(
                f"{figure}_{label}",
                f"failed (worker exited with status {result.returncode})",
            )
    return 1
