from django.core.management.base import BaseCommand
from django.utils import timezone

from ... import scoring
from ...conf import settings_scope


class Command(BaseCommand):
    help = (
        "Give the members who agreed to profiling their activity and value "
        "segments now, in this process (the nightly task does the same through "
        "the workers, a range of members per task)."
    )

    def handle(self, *args, **options):
        with settings_scope():
            scored = scoring.score_all(timezone.now())
        self.stdout.write(f"{scored} member(s) scored.")
