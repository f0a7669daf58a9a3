"""Settings of the Celery workers the Redis tests start: the example shop's test
settings, with small expiry chunks, this test's queue for the tasks a task
sends, and a short visibility timeout so a message of a killed worker comes back
in seconds rather than in an hour."""

import os

from example_shop.settings.test import *  # noqa: F403

OSCAR_LOYALTY_EXPIRY_CHUNK = int(os.environ.get("LOYALTY_TEST_EXPIRY_CHUNK", 50_000))
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("LOYALTY_TEST_QUEUE", "celery")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
