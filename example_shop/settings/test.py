"""Settings for automated runs (the test suite and the benchmarks).

Fast password hashing, e-mail kept in memory, media in a throwaway directory removed
at exit. The database comes from DATABASE_URL (PostgreSQL in CI); without it each run
gets a private in-memory SQLite database (or the file EXAMPLE_SHOP_TEST_DB names).
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Media and the search index go to a folder of this process, removed at exit.
_RUN_DIR = Path(tempfile.mkdtemp(prefix="example-shop-test-"))
atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT") or _RUN_DIR / "media")
WAGTAIL_MEMBERS_GATED_MEDIA_ROOT = _RUN_DIR / "gated-media"
HAYSTACK_CONNECTIONS = {
    "default": {
        "ENGINE": "haystack.backends.whoosh_backend.WhooshEngine",
        "PATH": str(_RUN_DIR / "whoosh"),
    }
}
STORAGES = {
    "default": {"BACKEND": "wagtail_members.storage.GatedFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ALLOWED_HOSTS = ["*"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and os.environ.get(
    "EXAMPLE_SHOP_TEST_DB"
):
    # A file lets ``pytest --reuse-db`` skip migrations; by default each run gets a
    # private in-memory database, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["EXAMPLE_SHOP_TEST_DB"]}
