"""Members import: streamed, all or nothing, duplicates found, opening balances once."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from openpyxl import Workbook

from oscar_loyalty import consent
from oscar_loyalty.audit import find_drift
from oscar_loyalty.imports import import_members
from oscar_loyalty.models import ConsentChange, Entry, Lot, Member, Posting
from oscar_loyalty.services import ledger
from oscar_loyalty.services.members import get_or_create_member, normalise_phone
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()
HEADER = "email,first_name,last_name,phone,points,birthday,language,email_consent\n"


def csv_file(text):
    return io.BytesIO(text.encode("utf-8"))


def run(text, *, dry_run=False, file_format="csv", **kwargs):
    binary = text if not isinstance(text, str) else csv_file(text)
    return import_members(binary, file_format, dry_run=dry_run, **kwargs)


def ledger_rows():
    return (
        Posting.objects.count(),
        Lot.objects.count(),
        Entry.objects.count(),
        Member.objects.count(),
        User.objects.count(),
    )


GOOD = (
    HEADER
    + "mei@Example.COM,Mei,Lin,+86 138-0013-8001,1200,02-29,zh-hans,yes\n"
    + "wei@example.com,Wei,Wang,,0,,,no\n"
    + "li@example.com,Jing,Li,0086 13800138003,350,12-01,en,\n"
)


def test_a_file_creates_customers_members_and_opening_balances():
    report = run(GOOD, label="#1 members.csv")

    assert report.imported and report.ok
    assert (report.rows, report.created, report.balances, report.points) == (
        3,
        3,
        2,
        1550,
    )
    mei = Member.objects.select_related("user").get(user__email="mei@example.com")
    assert mei.user.first_name == "Mei" and not mei.user.has_usable_password()
    assert (mei.available, mei.lifetime_earned, mei.phone) == (
        1200,
        1200,
        "+8613800138001",
    )
    assert (mei.birth_month, mei.birth_day, mei.language) == (2, 29, "zh-hans")
    assert mei.channel == Member.Channel.IMPORT
    assert mei.consent_email and not mei.consent_sms
    assert list(
        ConsentChange.objects.filter(member=mei).values_list("purpose", "source")
    ) == [("email", "import")]
    posting = Posting.objects.get(member=mei)
    assert (posting.kind, posting.key) == ("opening", f"opening:{mei.pk}")
    assert "members.csv" in posting.reason
    lot = Lot.objects.get(member=mei)
    assert (lot.source, lot.status, lot.remaining) == ("import", "active", 1200)
    assert lot.expires_at > timezone.now() + timedelta(days=300)
    assert Member.objects.get(user__email="li@example.com").phone == "+8613800138003"
    assert not Posting.objects.filter(member__user__email="wei@example.com").exists()
    assert find_drift() == []


def test_the_same_file_again_adds_nothing():
    run(GOOD)
    before = ledger_rows()

    again = run(GOOD)

    assert again.imported
    assert (again.created, again.balances, again.unchanged) == (0, 0, 3)
    assert ledger_rows() == before
    assert find_drift() == []


def test_a_dry_run_reports_what_would_happen_and_keeps_nothing():
    before = ledger_rows()

    report = run(GOOD, dry_run=True)

    assert report.ok and not report.imported
    assert (report.created, report.balances, report.points) == (3, 2, 1550)
    assert [row["outcome"] for row in report.preview] == ["created"] * 3
    assert ledger_rows() == before
    assert not ConsentChange.objects.exists()


def test_one_bad_row_imports_nothing_and_every_error_is_listed_by_line():
    text = (
        HEADER
        + "good@example.com,A,B,,100,,,\n"
        + "not-an-address,A,B,,100,,,\n"
        + "c@example.com,A,B,13800138000,-5,13-01,klingon,maybe\n"
        + "GOOD@example.com,A,B,,5,,,\n"
    )
    before = ledger_rows()

    report = run(text)

    assert not report.imported
    errors = {(e["line"], e["column"]) for e in report.errors}
    assert errors == {
        (3, "email"),
        (4, "phone"),
        (4, "points"),
        (4, "birthday"),
        (4, "language"),
        (4, "email_consent"),
        (5, "email"),  # the same address as line 2, whatever its case
    }
    assert "Line 2" in next(e["message"] for e in report.errors if e["line"] == 5)
    assert report.error_count == 7
    assert ledger_rows() == before


def test_a_phone_twice_in_the_file_or_of_another_member_is_an_error():
    other = get_or_create_member(UserFactory(email="owner@example.com"))
    Member.objects.filter(pk=other.pk).update(phone="+8613900000000")
    text = (
        HEADER
        + "a@example.com,,,+86 139 0000 0000,,,,\n"
        + "b@example.com,,,+86 137 0000 0000,,,,\n"
        + "c@example.com,,,+8613700000000,,,,\n"
    )

    report = run(text)

    assert {(e["line"], e["column"]) for e in report.errors} == {
        (2, "phone"),  # another member's
        (4, "phone"),  # line 3's
    }
    assert not Member.objects.filter(user__email="b@example.com").exists()


def test_existing_customers_join_and_members_get_one_opening_balance():
    customer = UserFactory(email="Customer@Example.com")
    member = get_or_create_member(UserFactory(email="member@example.com"))
    ledger.adjust(
        member=member, points=40, reason="welcome", actor=ledger.Actor(None, "s")
    )
    text = (
        HEADER
        + "customer@example.com,,,,300,,,yes\n"
        + "MEMBER@example.com,,,+447700900123,500,,,yes\n"
    )

    report = run(text)
    again = run(text)

    assert (report.joined, report.updated, report.created) == (1, 1, 0)
    assert (again.unchanged, again.balances) == (2, 0)
    joined = Member.objects.get(user=customer)
    assert joined.available == 300
    member.refresh_from_db()
    assert (member.available, member.lifetime_earned) == (540, 540)
    assert member.phone == "+447700900123" and member.consent_email
    assert User.objects.filter(email__iexact="customer@example.com").count() == 1
    assert Posting.objects.filter(kind="opening").count() == 2
    assert find_drift() == []


def test_an_import_gives_consent_and_never_withdraws_it():
    member = get_or_create_member(UserFactory(email="kept@example.com"))
    consent.record(member, {"sms": True}, source=consent.Source.ACCOUNT)
    consent.record(member, {"profiling": True}, source=consent.Source.ACCOUNT)
    consent.record(member, {"profiling": False}, source=consent.Source.ACCOUNT)

    run(
        "email,sms_consent,email_consent,profiling_consent\n"
        "kept@example.com,no,yes,yes\n"
    )

    member.refresh_from_db()
    assert member.consent_sms and member.consent_email
    # Withdrawn on the account page: an old system's "yes" does not bring it back.
    assert not member.consent_profiling
    assert list(
        ConsentChange.objects.filter(member=member)
        .order_by("id")
        .values_list("purpose", "granted", "source")
    ) == [
        ("sms", True, "account"),
        ("profiling", True, "account"),
        ("profiling", False, "account"),
        ("email", True, "import"),
    ]


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty"),
        ("first_name\nMei\n", "email"),
        ("email,favourite_tea\na@example.com,oolong\n", "favourite_tea"),
        ("email,Email\na@example.com,b@example.com\n", "twice"),
        ("email\n", "no rows"),
    ],
)
def test_a_file_that_is_not_a_members_file_is_refused_whole(text, message):
    report = run(text)

    assert not report.imported
    assert message in report.file_error
    assert not Member.objects.exists()


def test_a_file_that_is_not_utf8_is_refused_with_a_hint():
    report = run(io.BytesIO("email,first_name\nmei@example.com,林梅\n".encode("gbk")))

    assert "UTF-8" in report.file_error
    assert not Member.objects.exists()


def test_spreadsheets_semicolons_and_headers_in_other_words_are_read():
    book = Workbook()
    sheet = book.active
    sheet.append(["E-mail", "First name", "Opening balance", "Points expire"])
    expires = (timezone.localdate() + timedelta(days=40)).isoformat()
    sheet.append(["xlsx@example.com", "Hao", 75, expires])
    sheet.append([None, None, None, None])
    binary = io.BytesIO()
    book.save(binary)
    binary.seek(0)

    report = run(binary, file_format="xlsx")
    semicolons = run("email;points\nsemi@example.com;20\n")

    assert report.imported and semicolons.imported, (report.errors, semicolons.errors)
    lot = Lot.objects.get(member__user__email="xlsx@example.com")
    assert lot.points == 75
    assert timezone.localdate(lot.expires_at).isoformat() == expires
    assert Member.objects.get(user__email="semi@example.com").available == 20


def test_rows_are_written_a_chunk_at_a_time(monkeypatch):
    from oscar_loyalty import imports

    monkeypatch.setattr(imports, "CHUNK", 7)
    rows = "".join(f"c{n}@example.com,{n}\n" for n in range(1, 31))

    report = run("email,points\n" + rows + "c3@example.com,1\n")
    assert report.error_count == 1 and not Member.objects.exists()

    report = run("email,points\n" + rows)
    assert report.imported and report.created == 30
    assert Member.objects.get(user__email="c30@example.com").available == 30
    assert find_drift() == []


def test_repeats_are_found_across_chunks_and_listed_by_line(monkeypatch):
    """The fingerprints of earlier chunks are in the database, not the process:
    a repeat far down the file is still named with its first line."""
    from oscar_loyalty import imports

    monkeypatch.setattr(imports, "CHUNK", 4)
    rows = [f"c{n}@example.com,+86 139 0000 {n:04d},{n}\n" for n in range(1, 13)]
    rows.insert(9, "C2@EXAMPLE.com,,1\n")  # line 11: line 3's address
    # Line 12 is refused as it is read, line 13 when its chunk is written.
    rows.insert(10, "bad-address,,1\n")
    rows.insert(11, "new@example.com,+8613900000005,1\n")  # line 6's phone
    before = ledger_rows()

    report = run("email,phone,points\n" + "".join(rows), dry_run=True)

    assert [(e["line"], e["column"]) for e in report.errors] == [
        (11, "email"),
        (12, "email"),
        (13, "phone"),
    ]
    assert "Line 3" in report.errors[0]["message"]
    assert "Line 6" in report.errors[2]["message"]
    assert ledger_rows() == before

    # The same file without the repeats: every row is taken, run twice.
    clean = "email,phone,points\n" + "".join(
        row for row in rows if not row.startswith(("C2@", "new@", "bad-"))
    )
    assert run(clean).created == 12
    again = run(clean)
    assert again.imported and again.unchanged == 12 and not again.errors


def test_later_chunks_find_customers_already_there_or_signed_up_meanwhile(
    monkeypatch,
):
    """From the second chunk on, PostgreSQL looks customers up in a temporary
    index of their addresses; one who signs up during the import is found too."""
    from oscar_loyalty import imports

    monkeypatch.setattr(imports, "CHUNK", 3)
    early = UserFactory(email="Early@Example.com")
    write = imports.Importer.write

    def write_then_a_sign_up(self, rows):
        write(self, rows)
        if self.chunks == 2:
            UserFactory(email="late@example.com")

    monkeypatch.setattr(imports.Importer, "write", write_then_a_sign_up)
    rows = [f"c{n}@example.com,{n}\n" for n in range(1, 10)]
    rows.insert(7, "early@example.com,5\n")  # chunk 3
    rows.append("LATE@example.com,7\n")  # chunk 4

    report = run("email,points\n" + "".join(rows))

    assert report.imported, report.errors
    assert (report.created, report.joined) == (9, 2)
    assert Member.objects.get(user=early).available == 5
    late = User.objects.get(email="late@example.com")
    assert Member.objects.get(user=late).available == 7
    assert User.objects.filter(email__iexact="late@example.com").count() == 1
    assert find_drift() == []


@pytest.mark.postgres
def test_a_customer_taking_an_address_of_the_file_mid_import_stops_it(monkeypatch):
    """The index of addresses is read at the second chunk: a customer who takes
    one of the file's addresses after that would otherwise get a twin account."""
    from oscar_loyalty import imports

    monkeypatch.setattr(imports, "CHUNK", 3)
    customer = UserFactory(email="old@example.com")
    write = imports.Importer.write

    def write_then_an_address_change(self, rows):
        write(self, rows)
        if self.chunks == 2:
            User.objects.filter(pk=customer.pk).update(email="c8@example.com")

    monkeypatch.setattr(imports.Importer, "write", write_then_an_address_change)
    rows = "".join(f"c{n}@example.com,{n}\n" for n in range(1, 10))
    before = ledger_rows()

    report = run("email,points\n" + rows)

    assert not report.imported
    assert "changed their e-mail address" in report.file_error
    assert ledger_rows() == before


@pytest.mark.parametrize(
    "raw,normal",
    [
        ("+86 138-0013-8000", "+8613800138000"),
        ("0044 (7700) 900.123", "+447700900123"),
        ("+1 415 555 0100", "+14155550100"),
    ],
)
def test_phone_numbers_are_normalised(raw, normal):
    assert normalise_phone(raw) == normal


@pytest.mark.parametrize("raw", ["13800138000", "+0 123 4567 89", "+86 12", "call me"])
def test_phone_numbers_without_a_country_code_are_refused(raw):
    with pytest.raises(ValueError):
        normalise_phone(raw)


def test_the_command_checks_imports_and_says_what_it_did(tmp_path):
    path = tmp_path / "members.csv"
    path.write_text(GOOD, encoding="utf-8")
    out = io.StringIO()

    call_command("import_members", str(path), "--dry-run", stdout=out)
    assert "Dry run, nothing kept. 3 row(s): 3 new member(s)" in out.getvalue()
    assert not Member.objects.exists()

    call_command("import_members", str(path), stdout=out)
    assert "Imported. 3 row(s)" in out.getvalue()
    assert Member.objects.count() == 3

    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnope\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 error"):
        call_command("import_members", str(bad), stderr=err)
    assert "line 2 [email]" in err.getvalue()
    with pytest.raises(CommandError, match=".csv or .xlsx"):
        call_command("import_members", str(tmp_path / "members.pdf"))


def test_the_demo_sample_file_checks_clean():
    from pathlib import Path

    import example_shop

    sample = Path(example_shop.__file__).parent / "demo" / "members-sample.csv"
    with sample.open("rb") as binary:
        report = import_members(binary, "csv", dry_run=True)

    assert report.ok, report.errors
    assert (report.rows, report.created, report.points) == (4, 4, 3870)


def test_dates_far_outside_a_lifetime_are_refused():
    report = run(
        "email,joined,points,points_expire\na@example.com,0001-01-01,5,9999-12-31\n"
    )

    assert {(e["line"], e["column"]) for e in report.errors} == {
        (2, "joined"),
        (2, "points_expire"),
    }
