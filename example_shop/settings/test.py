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
if os.environ.get("DJANGO_MEDIA_ROOT"):
    MEDIA_ROOT = Path(os.environ["DJANGO_MEDIA_ROOT"])
else:
    MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="example-shop-media-"))
    atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ALLOWED_HOSTS = ["*"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and os.environ.get(
    "EXAMPLE_SHOP_TEST_DB"
):
    # A file lets ``pytest --reuse-db`` skip migrations; by default each run gets a
    # private in-memory database, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["EXAMPLE_SHOP_TEST_DB"]}
