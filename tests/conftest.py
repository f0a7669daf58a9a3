"""Suite-wide fixtures and the rules for tests that need services.

Tests marked ``postgres``, ``redis`` or ``browser`` skip with a reason when the service
is missing, and fail instead under ``CI=true``: CI must really run them.
"""

import os
import shutil
import socket
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


def _postgres_reason():
    from django.db import connection

    if connection.vendor != "postgresql":
        return (
            "needs PostgreSQL: set "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty "
            f"(the suite runs on {connection.vendor})"
        )
    return None


def _redis_reason():
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        return "needs Redis: set CELERY_BROKER_URL=redis://127.0.0.1:6379/0"
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2):
            return None
    except OSError as exc:
        return f"needs Redis at {parts.hostname}:{parts.port or 6379}: {exc}"


def chromium_path():
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser_reason():
    if chromium_path() is None:
        return "needs Debian's chromium (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs playwright (pip install playwright)"
    return None


REQUIREMENTS = {
    "postgres": _postgres_reason,
    "redis": _redis_reason,
    "browser": _browser_reason,
}


def pytest_runtest_setup(item):
    for marker, reason_for in REQUIREMENTS.items():
        if item.get_closest_marker(marker) is None:
            continue
        reason = reason_for()
        if reason is None:
            continue
        if IN_CI:
            pytest.fail(f"CI=true but this {marker} test cannot run: {reason}")
        pytest.skip(reason)


def pytest_report_header(config):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [
        f"database: {engine}; CI={'true' if IN_CI else 'false'}; "
        f"chromium: {chromium_path() or 'not installed'}"
    ]


@pytest.fixture(autouse=True)
def _the_dashboards_settings():
    """The owner's programme settings are kept in Django's cache. Each test
    starts with it warm, as a running shop has it (so a query count measures
    what every request costs, not the first one's read), kept for the whole run
    (tests/settings.py) rather than a minute. A test that saved some, then
    rolled back, must not leave them to the next test, nor a request that ended
    in an exception its scope, nor a scoring run its newest run."""
    from django.core.cache import cache

    from oscar_loyalty import conf, scoring

    try:
        conf.overrides()
    except RuntimeError:
        pass  # a test without the database: nothing to warm
    yield
    conf.close_scope()
    if cache.get(conf.CACHE_KEY):
        cache.delete(conf.CACHE_KEY)
    # The newest scoring run, if a test scored (its rows are rolled back).
    if cache.get(scoring.CURRENT_KEY) is not None:
        cache.delete(scoring.CURRENT_KEY)
