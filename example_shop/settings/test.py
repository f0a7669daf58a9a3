"""Settings for automated runs (the test suite and the benchmarks).

Fast password hashing, e-mail kept in memory, media in a throwaway directory. The
database still comes from DATABASE_URL (PostgreSQL in CI) or an SQLite file.
"""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = Path(
    os.environ.get("DJANGO_MEDIA_ROOT")
    or tempfile.mkdtemp(prefix="example-shop-media-")
)
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
