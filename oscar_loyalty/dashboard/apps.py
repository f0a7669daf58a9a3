from django.urls import path
from django.utils.translation import gettext_lazy as _
from oscar.core.application import OscarDashboardConfig


class LoyaltyDashboardConfig(OscarDashboardConfig):
    """The owner's loyalty screens inside Oscar's dashboard (staff only).

    URL names are prefixed ``loyalty-`` because Oscar's navigation looks dashboard URL
    names up across every dashboard config.
    """

    name = "oscar_loyalty.dashboard"
    label = "loyalty_dashboard"
    namespace = "loyalty_dashboard"
    verbose_name = _("Loyalty dashboard")
    default_permissions = ["is_staff"]

    def ready(self):
        from . import views

        self.overview_view = views.ProgrammeOverviewView

    def get_urls(self):
        urls = [
            path("", self.overview_view.as_view(), name="loyalty-overview"),
        ]
        return self.post_process_urls(urls)
