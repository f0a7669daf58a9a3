"""``python -m bench._migrate --database-url URL [--reuse]``: the benchmarks' template.

Migrates the database and records a fingerprint of every migration file on disk
as the database's comment. With ``--reuse`` it only compares: exit status 0 when the
database exists and its fingerprint is today's (nothing to do), 3 when it must be
made again. A migration edited in place therefore never leaves a stale template.
"""

import argparse
import hashlib
import sys
from pathlib import Path

from bench import _django, info

STALE = 3


def fingerprint():
    """A hash of every migration file of every installed app."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    digest = hashlib.sha256()
    for key in sorted(loader.disk_migrations):
        migration = loader.disk_migrations[key]
        path = Path(sys.modules[migration.__module__].__file__)
        digest.update(repr(key).encode())
        digest.update(path.read_bytes())
    return f"oscar-loyalty-bench {digest.hexdigest()}"


def recorded():
    from django.db import OperationalError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]
    except OperationalError:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._migrate")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args(argv)
    _django.setup(args.database_url)

    from django.db import connection

    current = fingerprint()
    if args.reuse:
        if recorded() == current:
            info("template: up to date with the migrations on disk")
            return 0
        return STALE
    _django.migrate("template")
    with connection.cursor() as cursor:
        name = connection.ops.quote_name(connection.settings_dict["NAME"])
        cursor.execute(f"COMMENT ON DATABASE {name} IS %s", [current])
    return 0


if __name__ == "__main__":
    sys.exit(main())
