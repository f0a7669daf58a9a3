"""The demo shop's Celery app.

Plugins only declare ``@shared_task``; this module is the one place that creates an app.
With the embedded defaults (no ``CELERY_BROKER_URL``) tasks run eagerly in-process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_shop.settings.dev")

app = Celery("example_shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="example_shop.ping")
def ping():
    """Round-trip check for operators and the Redis test: a worker answers ``pong``."""
    return "pong"
