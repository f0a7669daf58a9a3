"""The test suite's settings: the example shop's test settings with both plugins.

Tasks always run eagerly here, whatever CELERY_BROKER_URL says: the suite tests
services directly, and the Redis tests start a real worker of their own.
"""

from example_shop.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True

if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    # Commits need not wait for the WAL to reach the disk: nothing in a test
    # outlives a crash, and on a slow disk every transactional test's flush and
    # every committed row otherwise waits for an fsync.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (  # noqa: F405
        "-c synchronous_commit=off"
    )
