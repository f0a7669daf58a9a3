from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailMembersConfig(AppConfig):
    """Member pages for Wagtail. Reads loyalty data only through ``selectors``."""

    name = "wagtail_members"
    label = "wagtail_members"
    verbose_name = _("Member pages")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            community,  # noqa: F401  (connects the story receivers)
            media,
        )

        media.connect()
