"""Reading settings from environment variables, with the embedded defaults."""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def database_from_url(url, *, sqlite_default):
    """Turn ``DATABASE_URL`` into a ``DATABASES['default']`` dict.

    Supports ``postgres://``/``postgresql://`` and ``sqlite:///path``; without a URL
    the embedded SQLite file is used, in WAL mode with IMMEDIATE transactions so a
    demo with two browser tabs does not hit "database is locked".
    """
    if not url:
        return sqlite_config(sqlite_default)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as dj-database-url
        path = unquote(parts.path)[1:]
        return sqlite_config(Path(path) if path else sqlite_default)
    if scheme in {"postgres", "postgresql", "pgsql"}:
        options = dict(parse_qsl(parts.query))
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": int(options.pop("conn_max_age", 60)),
            "CONN_HEALTH_CHECKS": True,
        }
        if options:
            config["OPTIONS"] = options
        return config
    raise ValueError(
        f"DATABASE_URL scheme {scheme!r} is not supported; use postgres:// or sqlite:///"
    )


def sqlite_config(path):
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
