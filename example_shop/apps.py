from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExampleShopConfig(AppConfig):
    name = "example_shop"
    verbose_name = _("Example shop")
    default_auto_field = "django.db.models.BigAutoField"
