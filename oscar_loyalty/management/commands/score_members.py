from django.core.management.base import BaseCommand
from django.utils import timezone

from ... import scoring, winback
from ...conf import settings_scope


class Command(BaseCommand):
    help = (
        "Give the members who agreed to profiling their activity, value and RFM "
        "segments and churn risk now, and start the win-backs it calls for, in this "
        "process (the nightly task does the same in a worker)."
    )

    def handle(self, *args, **options):
        with settings_scope():
            run = scoring.run(timezone.now())
            started = winback.start(run)
        self.stdout.write(f"{run.members} member(s) scored.")
        if started:
            self.stdout.write(f"{sum(started.values())} member(s) picked for win-back.")
