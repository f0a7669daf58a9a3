import getpass
import hashlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone, translation

from ...imports import ImportFileError, import_members, sniff_format
from ...models import MemberImport


def record_import(path, file_format, report):
    """The run in the dashboard's list of imports (Loyalty → Import members),
    as an upload's would be: who ran it (the system account), the file's name,
    size and SHA-256, and the result. The file itself is not kept."""
    digest = hashlib.sha256()
    with path.open("rb") as binary:
        for block in iter(lambda: binary.read(1 << 20), b""):
            digest.update(block)
    try:
        account = getpass.getuser()
    except Exception:  # no name for this process's user id
        account = "?"
    MemberImport.objects.create(
        user=None,
        user_name=f"manage.py import_members ({account})"[:254],
        file_name=path.name[:255],
        file_format=file_format,
        content=None,
        size=path.stat().st_size,
        sha256=digest.hexdigest(),
        language=translation.get_language() or "",
        status=(
            MemberImport.Status.IMPORTED
            if report.imported
            else MemberImport.Status.FAILED
        ),
        import_report=report.as_dict(),
        imported_at=timezone.now() if report.imported else None,
    )


class Command(BaseCommand):
    help = (
        "Import members from a CSV or XLSX file (columns: email, first_name, "
        "last_name, phone, points, points_expire, birthday, language, joined, "
        "email_consent, sms_consent, profiling_consent), all or nothing. "
        "With --dry-run, check the file and report what would happen; nothing is "
        "kept. Importing the same file again adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The .csv or .xlsx file.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check every row and report; keep nothing.",
        )

    def handle(self, *args, path, dry_run=False, **options):
        file_path = Path(path)
        try:
            file_format = sniff_format(file_path.name)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        if not file_path.is_file():
            raise CommandError(f"No such file: {file_path}")
        with file_path.open("rb") as binary:
            report = import_members(
                binary, file_format, dry_run=dry_run, label=file_path.name
            )
        if not dry_run:
            record_import(file_path, file_format, report)
        if report.file_error:
            raise CommandError(report.file_error)
        for error in report.errors:
            column = f" [{error['column']}]" if error["column"] else ""
            self.stderr.write(f"line {error['line']}{column}: {error['message']}")
        summary = (
            f"{report.rows} row(s): {report.created} new member(s), "
            f"{report.joined} existing customer(s) joined, {report.updated} "
            f"updated, {report.unchanged} unchanged; {report.balances} opening "
            f"balance(s), {report.points} point(s)."
        )
        if report.error_count:
            raise CommandError(
                f"{report.error_count} error(s): nothing was imported. {summary}"
            )
        if dry_run:
            self.stdout.write(f"Dry run, nothing kept. {summary}")
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported. {summary}"))
