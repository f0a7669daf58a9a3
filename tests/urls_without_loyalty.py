"""A shop that forgot to mount the loyalty URLs (for the W006 check)."""

from django.apps import apps
from django.urls import include, path

urlpatterns = [
    path("shop/", include(apps.get_app_config("oscar").urls[0])),
]
