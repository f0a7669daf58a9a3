"""Loyalty → Import members in Oscar's dashboard: upload, read the check, import;
only for staff with ``import_members``, audited, once."""

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import Member, MemberImport, Posting
from tests.factories import StaffFactory, UserFactory
from tests.test_dashboard_members import grant

pytestmark = pytest.mark.django_db

LIST = reverse("loyalty_dashboard:loyalty-import-list")
GOOD = (
    "email,first_name,phone,points,email_consent\n"
    "mei@example.com,Mei,+8613800138001,1200,yes\n"
    "wei@example.com,Wei,,0,no\n"
)


def detail(record):
    return reverse("loyalty_dashboard:loyalty-import-detail", kwargs={"pk": record.pk})


def run_url(record):
    return reverse("loyalty_dashboard:loyalty-import-run", kwargs={"pk": record.pk})


@pytest.fixture
def importer():
    client = Client()
    client.force_login(grant(StaffFactory(username="ada"), "import_members"))
    return client


def upload(client, text, name="members.csv", capture=None):
    data = {"file": SimpleUploadedFile(name, text.encode("utf-8"), "text/csv")}
    if capture is None:
        return client.post(LIST, data)
    with capture(execute=True):
        return client.post(LIST, data)


def test_a_checked_file_is_imported_once_and_both_steps_are_audited(
    importer, django_capture_on_commit_callbacks
):
    response = upload(importer, GOOD, capture=django_capture_on_commit_callbacks)

    record = MemberImport.objects.get()
    assert response.status_code == 302 and response["Location"] == detail(record)
    assert record.status == MemberImport.Status.CHECKED
    assert record.check_report["created"] == 2 and not Member.objects.exists()
    page = importer.get(detail(record)).content.decode()
    assert 'id="loyalty-import-check"' in page
    assert 'id="loyalty-import-preview"' in page and "mei@example.com" in page
    assert "Import 2 rows" in page

    with django_capture_on_commit_callbacks(execute=True):
        importer.post(run_url(record))
    with django_capture_on_commit_callbacks(execute=True):
        importer.post(run_url(record))  # pressed twice

    record.refresh_from_db()
    assert record.status == MemberImport.Status.IMPORTED
    assert record.content is None and record.imported_at is not None
    assert Member.objects.count() == 2
    assert Posting.objects.filter(kind="opening").count() == 1
    assert find_drift() == []
    messages = list(
        LogEntry.objects.filter(object_id=str(record.pk)).values_list(
            "change_message", flat=True
        )
    )
    assert sorted(messages) == [
        "Started importing members.csv",
        "Uploaded members.csv to check",
    ]
    page = importer.get(detail(record)).content.decode()
    assert 'id="loyalty-import-result"' in page
    assert 'id="loyalty-import-run"' not in page


def test_a_file_with_errors_shows_them_and_cannot_be_imported(
    importer, django_capture_on_commit_callbacks
):
    upload(
        importer,
        "email,points\nmei@example.com,12\nnot an address,-1\n",
        capture=django_capture_on_commit_callbacks,
    )
    record = MemberImport.objects.get()

    page = importer.get(detail(record)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = importer.post(run_url(record), follow=True)

    assert 'id="loyalty-import-check-errors"' in page
    assert "Enter a valid e-mail address." in page
    assert 'id="loyalty-import-run"' not in page
    assert "Only a checked file without errors" in response.content.decode()
    record.refresh_from_db()
    assert record.status == MemberImport.Status.CHECKED
    assert not Member.objects.exists()


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("members.pdf", "email\n", "Upload a .csv or .xlsx file."),
        ("members.csv", "", "The submitted file is empty."),
    ],
)
def test_a_file_of_the_wrong_kind_is_refused_on_the_form(importer, name, text, message):
    response = upload(importer, text, name=name)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not MemberImport.objects.exists()


def test_staff_without_the_permission_cannot_upload_or_import(
    django_capture_on_commit_callbacks,
):
    viewer = Client()
    viewer.force_login(grant(StaffFactory(), "view_member"))
    owner = Client()
    owner.force_login(grant(StaffFactory(), "import_members"))
    upload(owner, GOOD, capture=django_capture_on_commit_callbacks)
    record = MemberImport.objects.get()

    assert viewer.get(LIST).status_code == 403
    assert upload(viewer, GOOD).status_code == 403
    assert viewer.get(detail(record)).status_code == 403
    assert viewer.post(run_url(record)).status_code == 403
    shopper = Client()
    shopper.force_login(UserFactory())
    assert shopper.get(LIST).status_code in (302, 403)
    assert MemberImport.objects.count() == 1 and not Member.objects.exists()


def test_names_and_messages_from_the_file_are_escaped(
    importer, django_capture_on_commit_callbacks
):
    upload(
        importer,
        "email\n<script>alert(1)</script>@example.com\n",
        name="x<img src=y onerror=alert(1)>.csv",
        capture=django_capture_on_commit_callbacks,
    )
    record = MemberImport.objects.get()

    page = importer.get(detail(record)).content.decode()
    assert "<img src=y" not in page and "x&lt;img src=y onerror=alert(1)&gt;" in page
    assert "<script>alert(1)" not in page


def test_a_file_that_fails_unexpectedly_is_marked_and_can_be_checked_again(
    importer, django_capture_on_commit_callbacks, monkeypatch
):
    from oscar_loyalty import imports

    upload(importer, GOOD, capture=django_capture_on_commit_callbacks)
    record = MemberImport.objects.get()
    real = imports.Importer.run

    def broken(self):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(imports.Importer, "run", broken)
    with django_capture_on_commit_callbacks(execute=True):
        importer.post(run_url(record))

    record.refresh_from_db()
    assert record.status == MemberImport.Status.FAILED
    assert "nothing was imported" in record.import_report["file_error"]
    assert not Member.objects.exists()
    page = importer.get(detail(record)).content.decode()
    assert 'id="loyalty-import-check-again"' in page

    monkeypatch.setattr(imports.Importer, "run", real)
    with django_capture_on_commit_callbacks(execute=True):
        importer.post(run_url(record), {"action": "check"})
    record.refresh_from_db()
    assert record.status == MemberImport.Status.CHECKED
    with django_capture_on_commit_callbacks(execute=True):
        importer.post(run_url(record))
    record.refresh_from_db()
    assert record.status == MemberImport.Status.IMPORTED
    assert Member.objects.count() == 2


def test_files_not_imported_are_deleted_after_the_keeping_days(
    importer, django_capture_on_commit_callbacks, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from oscar_loyalty.tasks import forget_import_files

    settings.OSCAR_LOYALTY_IMPORT_KEEP_DAYS = 7
    upload(importer, GOOD, capture=django_capture_on_commit_callbacks)
    upload(
        importer, GOOD, name="recent.csv", capture=django_capture_on_commit_callbacks
    )
    old, recent = MemberImport.objects.order_by("pk")
    MemberImport.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=8)
    )
    stuck = MemberImport.objects.create(
        user_name="ada",
        file_name="stuck.csv",
        file_format="csv",
        content=b"email\nx@example.com\n",
        status=MemberImport.Status.IMPORTING,
        created_at=timezone.now() - timedelta(days=9),
        sha256="0" * 64,
    )

    assert forget_import_files() == 2
    assert forget_import_files() == 0

    states = {
        row.pk: (row.content is None, row.status) for row in MemberImport.objects.all()
    }
    assert states[old.pk] == (True, MemberImport.Status.CHECKED)
    assert states[recent.pk] == (False, MemberImport.Status.CHECKED)
    assert states[stuck.pk] == (True, MemberImport.Status.FAILED)
    assert MemberImport.objects.get(pk=old.pk).check_report["created"] == 2


def test_the_check_is_written_in_the_uploaders_language_whoever_runs_it(importer):
    """The worker runs in the shop's default language; the report is read by the
    staff user who uploaded the file."""
    from django.utils import translation

    from oscar_loyalty.imports import process

    upload_zh = importer.post(
        LIST,
        {
            "file": SimpleUploadedFile(
                "members.csv", b"email\nnot an address\n", "text/csv"
            )
        },
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert upload_zh.status_code == 302
    record = MemberImport.objects.get()
    assert record.language == "zh-hans"
    assert record.status == MemberImport.Status.CHECKING  # not run yet

    with translation.override("en"):
        process(record.pk)

    record.refresh_from_db()
    assert record.check_report["errors"][0]["message"] == "请输入有效的电子邮箱地址。"


def test_a_command_line_import_is_listed_with_the_uploads(importer, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "crm-export.csv"
    path.write_text(GOOD, encoding="utf-8")
    call_command("import_members", str(path), "--dry-run", stdout=None)
    assert not MemberImport.objects.exists()  # a check keeps nothing

    call_command("import_members", str(path))

    record = MemberImport.objects.get()
    assert record.status == MemberImport.Status.IMPORTED
    assert record.user is None and record.user_name.startswith(
        "manage.py import_members ("
    )
    assert (record.file_name, record.size) == ("crm-export.csv", len(GOOD))
    assert record.import_report["created"] == 2 and record.content is None
    assert "crm-export.csv" in importer.get(LIST).content.decode()
    page = importer.get(detail(record)).content.decode()
    assert 'id="loyalty-import-result"' in page
    assert 'id="loyalty-import-run"' not in page
