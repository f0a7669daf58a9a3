"""Demo project: an Oscar shop with Wagtail pages and the loyalty programme enabled."""

from .celery import app as celery_app

__all__ = ["celery_app"]
