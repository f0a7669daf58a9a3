from django.utils.translation import gettext_lazy as _
from oscar.core.application import OscarConfig


class OscarLoyaltyConfig(OscarConfig):
    """The loyalty plugin. Never imports Wagtail: it works in any Oscar 4.2 shop."""

    name = "oscar_loyalty"
    label = "oscar_loyalty"
    namespace = "loyalty"
    verbose_name = _("Loyalty programme")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, receivers  # noqa: F401  (registers checks, receivers)
