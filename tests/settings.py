"""The test suite's settings: the example shop's test settings with both plugins.

Tasks always run eagerly here, whatever CELERY_BROKER_URL says: the suite tests
services directly, and the Redis tests start a real worker of their own.
"""

from example_shop.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True

# The dashboard's programme settings stay cached for the whole run (each test
# starts with them warm, as a running shop has them; see conftest).
OSCAR_LOYALTY_SETTINGS_CACHE_SECONDS = None
