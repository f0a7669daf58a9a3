"""Django in a worker process: ``tests.settings`` on the database a URL names.

Django's settings can be configured once per process, so each benchmark that needs a
database runs in a worker subprocess of its own (see :mod:`bench.workers`).
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import info

#: Migrated SQLite databases, by fingerprint of the migrations (see ``_migrate``).
SQLITE_CACHE = Path(tempfile.gettempdir()) / "oscar-loyalty-bench"


def setup(database_url):
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()


def migrate(label):
    """Migrate the database; a new SQLite file starts as a copy of a cached one.

    Migrating SQLite takes a minute; a file migrated by an earlier run with the same
    migration files (same fingerprint) is copied instead, and ``migrate`` then has
    nothing left to do.
    """
    from django.db import connection

    cached = None
    if connection.vendor == "sqlite":
        from bench._migrate import fingerprint

        path = Path(connection.settings_dict["NAME"])
        digest = fingerprint().rsplit(" ", 1)[-1]
        cached = SQLITE_CACHE / f"{digest}.sqlite3"
        if cached.exists() and not path.exists():
            shutil.copyfile(cached, path)
            info(f"{label}: copied a migrated database from {cached}")
    started = time.perf_counter()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    info(f"{label}: migrated in {time.perf_counter() - started:.1f} s")
    if cached is not None and not cached.exists():
        connection.close()  # the last connection folds the WAL into the file
        SQLITE_CACHE.mkdir(parents=True, exist_ok=True)
        for old in SQLITE_CACHE.glob("*.sqlite3"):
            old.unlink(missing_ok=True)
        partial = cached.with_suffix(".partial")
        shutil.copyfile(path, partial)
        partial.replace(cached)
