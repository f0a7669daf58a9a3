from django.core.management.base import BaseCommand

from ...audit import find_drift


class Command(BaseCommand):
    help = (
        "Verify every cached points balance against the ledger rows. "
        "Exits with status 1 and lists each drift when there is any."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--member", type=int, action="append", help="Only this member id."
        )

    def handle(self, *args, member=None, **options):
        problems = find_drift(member_ids=member)
        if not problems:
            self.stdout.write(self.style.SUCCESS("The points ledger is consistent."))
            return
        for problem in problems:
            self.stderr.write(str(problem))
        self.stderr.write(self.style.ERROR(f"{len(problems)} drift(s) found."))
        raise SystemExit(1)
