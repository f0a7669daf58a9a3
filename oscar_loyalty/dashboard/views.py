from django.conf import settings
from django.core import checks
from django.db import connection
from django.views.generic import TemplateView

from ..checks import TAG
from ..conf import loyalty_settings


class ProgrammeOverviewView(TemplateView):
    """What the programme runs on: settings in force and installation problems."""

    template_name = "oscar_loyalty/dashboard/overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        messages = checks.run_checks(tags=[TAG])
        context.update(
            programme_name=loyalty_settings.PROGRAMME_NAME,
            programme_settings=loyalty_settings.as_dict().items(),
            check_messages=messages,
            database_vendor=connection.vendor,
            tasks_run_eagerly=getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False),
        )
        return context
