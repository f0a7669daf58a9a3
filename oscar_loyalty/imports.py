"""Members import: a CSV or XLSX file of customers in, members with opening
balances out, all or nothing.

* **Streaming.** The file is read a row at a time (``csv`` over the file, openpyxl in
  read-only mode) and written a chunk of rows at a time, so memory stays flat
  whatever the file's length. To find rows that repeat an earlier one, an 8-byte
  fingerprint of each e-mail address and phone number goes into a temporary table
  (:class:`SeenKeys`), not into the process.
* **Set-based.** Each chunk costs a fixed number of queries: the customers, members
  and opening balances it may match are read with one array parameter each
  (:class:`~oscar_loyalty.bulk.AnyOf`), and new customers, members, postings,
  lots, entries and consent records are written with ``COPY`` on PostgreSQL
  (:func:`~oscar_loyalty.bulk.insert_rows`).
* **All or nothing.** The whole file is imported in one transaction. Any row with an
  error rolls everything back; the report lists every error by line and column.
  A dry run is the same import rolled back at the end: its report is exactly what
  the real import would do.
* **Idempotent.** An opening balance is a ledger posting keyed ``opening:<member
  id>``: a member has at most one, so importing the same file again (or another
  file naming the same customer) adds no points. Customers and members already in
  the shop are matched by e-mail address and not created again.
* **Ledger rules.** Opening balances are written like every other ledger event, in
  the transaction, with members that already existed locked in primary-key order;
  points are whole and positive (a zero balance writes nothing).

Welcome coupons are not issued to imported members: they are customers the shop
already has.
"""

import csv
import hashlib
import io
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Lower
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import consent, rules
from .bulk import AnyOf, any_of_sql, insert_rows
from .models import ConsentChange, Entry, Lot, Member, Posting
from .services.members import NUMBER_DIGITS, join_entry_tier, normalise_phone

logger = logging.getLogger(__name__)

#: Rows read and written together (each chunk reads the customers it may match:
#: fewer, larger chunks scan the customer table fewer times).
CHUNK = 5_000
#: At most this many row errors are kept for the report (all are counted).
ERRORS_KEPT = 200
#: Rows shown in the preview of a dry run.
PREVIEW_ROWS = 20
#: The largest opening balance a row may carry.
MAX_POINTS = 100_000_000

#: The file's columns; only ``email`` is required. Headers are matched without
#: regard to case, spaces or hyphens ("E-mail", "First name" work too).
COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "points",
    "points_expire",
    "birthday",
    "language",
    "joined",
    "email_consent",
    "sms_consent",
    "profiling_consent",
)
ALIASES = {"e_mail": "email", "mail": "email", "opening_balance": "points"}
CONSENT_COLUMNS = {
    "email_consent": consent.Purpose.EMAIL,
    "sms_consent": consent.Purpose.SMS,
    "profiling_consent": consent.Purpose.PROFILING,
}
YES = {"yes", "y", "true", "1", "是", "x"}
NO = {"", "no", "n", "false", "0", "否"}


class ImportFileError(Exception):
    """The file cannot be read as a members file at all (format, header)."""


def header_key(name):
    key = re.sub(r"[\s\-]+", "_", str(name or "").strip().lower())
    return ALIASES.get(key, key)


def fingerprint(text):
    """A signed 64-bit number standing for ``text``: what the import keeps of
    each address (two different addresses share one once in 10^19 pairs; the
    row would then be refused, never merged)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SeenKeys:
    """The fingerprints of the e-mail addresses and phones of the rows taken so
    far, in a temporary table of the import's transaction (gone with it), so
    that the process keeps nothing per row. ``kind`` 1 is an e-mail, 2 a phone.
    """

    TABLE = "oscar_loyalty_import_seen"
    KINDS = {"email": 1, "phone": 2}

    def __init__(self):
        self.postgres = connection.vendor == "postgresql"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.TABLE}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.TABLE} (kind smallint NOT NULL, "
                "fingerprint bigint NOT NULL, line integer NOT NULL, "
                "PRIMARY KEY (kind, fingerprint))"
                + (" ON COMMIT DROP" if self.postgres else "")
            )

    def earlier(self, kind, fingerprints):
        """``{fingerprint: line}`` of those already taken."""
        known, params = any_of_sql(connection, "fingerprint", "bigint", fingerprints)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT fingerprint, line FROM {self.TABLE} "
                f"WHERE kind = %s AND {known}",
                [self.KINDS[kind], *params],
            )
            return dict(cursor.fetchall())

    def add(self, kind, pairs):
        """Take ``(fingerprint, line)`` pairs."""
        code = self.KINDS[kind]
        with connection.cursor() as cursor:
            if self.postgres:
                with cursor.cursor.copy(
                    f"COPY {self.TABLE} (kind, fingerprint, line) FROM STDIN"
                ) as copy:
                    for value, line in pairs:
                        copy.write_row((code, value, line))
            else:
                cursor.executemany(
                    f"INSERT INTO {self.TABLE} (kind, fingerprint, line) "
                    "VALUES (%s, %s, %s)",
                    [(code, value, line) for value, line in pairs],
                )

    def close(self):
        if not self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.TABLE}")


# Reading ---------------------------------------------------------------------------


def sniff_format(name):
    lowered = (name or "").lower()
    if lowered.endswith(".xlsx"):
        return "xlsx"
    if lowered.endswith(".csv") or lowered.endswith(".txt"):
        return "csv"
    raise ImportFileError(_("Upload a .csv or .xlsx file."))


def read_csv(binary):
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        sample = text.read(4096)
        text.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        yield from csv.reader(text, dialect)
    except UnicodeDecodeError:
        raise ImportFileError(
            _("The file is not UTF-8 text: save it as “CSV UTF-8” and try again.")
        ) from None
    except csv.Error as exc:
        raise ImportFileError(_("The file is not valid CSV: %s") % exc) from None


def read_xlsx(binary):
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(binary, read_only=True, data_only=True)
    except Exception:
        raise ImportFileError(_("The file is not a valid .xlsx workbook.")) from None
    try:
        sheet = workbook.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield ["" if value is None else value for value in values]
    except ImportFileError:
        raise
    except Exception:
        # A workbook damaged past its first rows (openpyxl reads lazily).
        raise ImportFileError(_("The file is not a valid .xlsx workbook.")) from None
    finally:
        workbook.close()


def read_rows(binary, file_format):
    """``(line, {column: value})`` for each data row; the header is checked first."""
    reader = read_xlsx(binary) if file_format == "xlsx" else read_csv(binary)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(_("The file is empty.")) from None
    keys = [header_key(name) for name in header]
    unknown = [
        str(name)
        for name, key in zip(header, keys, strict=True)
        if key and key not in COLUMNS
    ]
    if unknown:
        raise ImportFileError(
            _("Unknown column(s): %(unknown)s. The columns are: %(columns)s.")
            % {"unknown": ", ".join(unknown), "columns": ", ".join(COLUMNS)}
        )
    if "email" not in keys:
        raise ImportFileError(_("The file needs an “email” column."))
    repeated = {key for key in keys if key and keys.count(key) > 1}
    if repeated:
        raise ImportFileError(
            _("Column(s) named twice: %s.") % ", ".join(sorted(repeated))
        )
    for line, values in enumerate(reader, start=2):
        if not any(str(value).strip() for value in values):
            continue  # blank lines and trailing empty rows of a spreadsheet
        row = {}
        for key, value in zip(keys, values, strict=False):
            if key:
                row[key] = value
        if len(values) > len(keys) and any(
            str(value).strip() for value in values[len(keys) :]
        ):
            row["__extra__"] = True
        yield line, row


# Checking a row --------------------------------------------------------------------


@dataclass
class Row:
    line: int
    email: str
    key: str  # the address lowercased: how customers are matched
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    points: int = 0
    expires_at: datetime | None = None
    birth_month: int | None = None
    birth_day: int | None = None
    language: str = ""
    joined_at: datetime | None = None
    consents: tuple = ()
    outcome: str = ""


@dataclass
class Report:
    dry_run: bool
    rows: int = 0
    created: int = 0
    joined: int = 0
    updated: int = 0
    unchanged: int = 0
    points: int = 0
    balances: int = 0
    error_count: int = 0
    errors: list = field(default_factory=list)
    preview: list = field(default_factory=list)
    file_error: str = ""
    imported: bool = False

    def error(self, line, column, message):
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(
                {"line": line, "column": column, "message": str(message)}
            )

    @property
    def ok(self):
        return not self.file_error and not self.error_count

    def as_dict(self):
        return asdict(self)


def text_of(value, limit):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()[:limit] if value is not None else ""


#: Dates outside these years are refused (typos; and they would not fit every
#: database's date range once made aware).
YEARS = range(1900, 2101)


def day_of(value):
    """A date from ``YYYY-MM-DD`` text or a spreadsheet date (``ValueError``
    otherwise)."""
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    else:
        day = date.fromisoformat(str(value).strip())
    if day.year not in YEARS:
        raise ValueError(day)
    return day


def at_start_of(day):
    return timezone.make_aware(datetime.combine(day, time.min))


def at_end_of(day):
    return timezone.make_aware(datetime.combine(day, time.max))


def parse_row(line, values, report, today, languages):
    """A checked :class:`Row`, or ``None`` after recording its errors."""
    errors_before = report.error_count
    if values.get("__extra__"):
        report.error(line, "", _("This row has more cells than the header."))
    email = text_of(values.get("email", ""), 254)
    try:
        if not email:
            raise ValidationError("")
        validate_email(email)
    except ValidationError:
        report.error(line, "email", _("Enter a valid e-mail address."))
    local, _at, host = email.rpartition("@")
    email = f"{local}@{host.lower()}" if local else email
    row = Row(line=line, email=email, key=email.lower())
    row.first_name = text_of(values.get("first_name", ""), 150)
    row.last_name = text_of(values.get("last_name", ""), 150)

    phone = text_of(values.get("phone", ""), 40)
    if phone:
        try:
            row.phone = normalise_phone(phone)
        except ValueError:
            report.error(
                line,
                "phone",
                _(
                    "Write the phone number with its country code, "
                    "e.g. +86 138 0013 8000."
                ),
            )

    points = text_of(values.get("points", ""), 20).replace(",", "")
    if points:
        try:
            row.points = int(points)
            if row.points < 0 or row.points > MAX_POINTS:
                raise ValueError
        except ValueError:
            report.error(
                line,
                "points",
                _("Points must be a whole number from 0 to %(max)s.")
                % {"max": MAX_POINTS},
            )

    expires = values.get("points_expire", "")
    if text_of(expires, 40):
        try:
            day = day_of(expires)
            if day <= today:
                report.error(line, "points_expire", _("This date has passed."))
            row.expires_at = at_end_of(day)
        except ValueError:
            report.error(line, "points_expire", _("Write the date as YYYY-MM-DD."))

    birthday = text_of(values.get("birthday", ""), 20)
    if birthday:
        match = re.fullmatch(r"(?:--)?(\d{1,2})-(\d{1,2})", birthday)
        valid = False
        if match:
            month, day = int(match.group(1)), int(match.group(2))
            try:
                date(2000, month, day)  # a leap year: 29 February exists
                valid = True
                row.birth_month, row.birth_day = month, day
            except ValueError:
                pass
        if not valid:
            report.error(
                line, "birthday", _("Write the birthday as MM-DD, e.g. 02-29.")
            )

    language = text_of(values.get("language", ""), 16).lower().replace("_", "-")
    if language:
        if language not in languages:
            report.error(
                line,
                "language",
                _("Unknown language; the shop has: %s.") % ", ".join(sorted(languages)),
            )
        row.language = language

    joined = values.get("joined", "")
    if text_of(joined, 40):
        try:
            day = day_of(joined)
            if day > today:
                report.error(line, "joined", _("This date is in the future."))
            row.joined_at = at_start_of(day)
        except ValueError:
            report.error(line, "joined", _("Write the date as YYYY-MM-DD."))

    agreed = []
    for column, purpose in CONSENT_COLUMNS.items():
        answer = text_of(values.get(column, ""), 10).lower()
        if answer in YES:
            agreed.append(purpose)
        elif answer not in NO:
            report.error(line, column, _("Write yes or no."))
    row.consents = tuple(agreed)
    return row if report.error_count == errors_before else None


# Writing a chunk -------------------------------------------------------------------


class CustomerIndex:
    """The customers' lowercased addresses and ids, read once into a temporary,
    indexed table of the import's transaction (PostgreSQL), so that a long file
    does not read the whole customer table once per chunk. Customers who sign up
    while the import runs are not in it: they are found among the ids above the
    last one it holds, less the import's own customers (never looked up again: a
    repeated address is refused before), through the primary key's index."""

    TABLE = "oscar_loyalty_import_customers"

    @staticmethod
    def usable():
        return connection.vendor == "postgresql"

    def __init__(self, User):
        quote = connection.ops.quote_name
        self.users = quote(User._meta.db_table)
        self.email = quote(User._meta.get_field("email").column)
        self.pk = quote(User._meta.pk.column)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.TABLE}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.TABLE} ON COMMIT DROP AS "
                f"SELECT lower({self.email}) AS key, {self.pk} AS id "
                f"FROM {self.users}"
            )
            cursor.execute(f"CREATE INDEX ON {self.TABLE} (key)")
            cursor.execute(f"ANALYZE {self.TABLE}")
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {self.TABLE}")
            (self.last_id,) = cursor.fetchone()
        #: The import's customers: id ranges (merged), and the ids inside them
        #: that are not the import's (a sign-up given an id in between).
        self.own = []
        self.others = []

    def created(self, ids):
        low, high = min(ids), max(ids)
        if high - low + 1 != len(ids):
            self.others.extend(sorted(set(range(low, high + 1)) - set(ids)))
        merged = []
        for start, end in sorted([*self.own, (low, high)]):
            if merged and start <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        self.own = merged

    def _newer(self):
        """SQL and parameters: the customers who are not in the table nor the
        import's own."""
        parts, params, after = [], [], self.last_id
        for start, end in self.own:
            parts.append(f"({self.pk} > %s AND {self.pk} < %s)")
            params += [after, start]
            after = end
        parts.append(f"{self.pk} > %s")
        params.append(after)
        if self.others:
            parts.append(f"{self.pk} = ANY(%s::bigint[])")
            params.append(self.others)
        return " OR ".join(parts), params

    def _ours(self, column):
        """SQL and parameters: ``column`` is a customer this import created."""
        ranges = " OR ".join(f"{column} BETWEEN %s AND %s" for _ in self.own)
        params = [bound for pair in self.own for bound in pair]
        if not ranges:
            return "false", []
        if self.others:
            return (
                f"(({ranges}) AND NOT {column} = ANY(%s::bigint[]))",
                [*params, self.others],
            )
        return f"({ranges})", params

    def clashes(self):
        """Whether a customer the import created shares an address with one it
        did not (one whose address changed, or who signed up, after the index
        was read): the file would then give one address two accounts. One pass
        over the customers, grouped by address (no join to plan badly)."""
        ours, params = self._ours(self.pk)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.users} GROUP BY lower({self.email}) "
                f"HAVING count(*) > 1 AND bool_or({ours}) AND bool_or(NOT {ours}) "
                "LIMIT 1",
                [*params, *params],
            )
            return cursor.fetchone() is not None

    def find(self, keys):
        """``(user id, address)`` of the customers with these addresses."""
        newer, params = self._newer()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, key FROM {self.TABLE} WHERE key = ANY(%s::text[]) "
                f"UNION ALL SELECT {self.pk}, lower({self.email}) FROM {self.users} "
                f"WHERE ({newer}) AND lower({self.email}) = ANY(%s::text[])",
                [keys, *params, keys],
            )
            return cursor.fetchall()


class Importer:
    """One run over one file: ``run()`` returns the :class:`Report`."""

    def __init__(self, binary, file_format, *, dry_run, actor=None, now=None, label=""):
        self.binary = binary
        self.file_format = file_format
        self.report = Report(dry_run=dry_run)
        self.actor = actor
        self.now = now or timezone.now()
        self.today = timezone.localdate(self.now)
        self.label = label
        self.languages = {code.lower() for code, _name in settings.LANGUAGES}
        self.User = get_user_model()
        self.user_fields = {f.name for f in self.User._meta.get_fields()}
        self.default_expiry = rules.expiry_for(self.now)
        self.chunks = 0
        self.customers = None

    def run(self):
        report = self.report
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        # One import at a time: two of the same file at once would
                        # not see each other's new customers before they commit.
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [7_250_931])
                self.seen = SeenKeys()
                chunk = []
                for line, values in read_rows(self.binary, self.file_format):
                    report.rows += 1
                    row = parse_row(line, values, report, self.today, self.languages)
                    if row is not None:
                        chunk.append(row)
                    if len(chunk) >= CHUNK:
                        self.write(self.first_times(chunk))
                        chunk = []
                if chunk:
                    self.write(self.first_times(chunk))
                self.seen.close()
                if (
                    self.customers is not None
                    and report.ok
                    and self.customers.clashes()
                ):
                    report.file_error = _(
                        "A customer signed up or changed their e-mail address to one "
                        "in the file while it was imported; nothing was imported. "
                        "Check the file again."
                    )
                # Repeats are found a chunk at a time: the report lists by line.
                report.errors.sort(key=lambda error: error["line"])
                if not report.rows:
                    report.file_error = _("The file has a header but no rows.")
                if report.dry_run or not report.ok:
                    transaction.set_rollback(True)
                else:
                    report.imported = True
        except ImportFileError as exc:
            report.file_error = str(exc)
        return report

    def first_times(self, rows):
        """The rows that repeat no earlier row's e-mail or phone (in the file so
        far); each one that does gets an error naming the first line."""
        keys = {
            "email": [fingerprint(row.key) for row in rows],
            "phone": [fingerprint(row.phone) if row.phone else None for row in rows],
        }
        earlier = {
            column: self.seen.earlier(column, [v for v in values if v is not None])
            for column, values in keys.items()
        }
        first, taken = [], {"email": [], "phone": []}
        for index, row in enumerate(rows):
            for column in ("email", "phone"):
                value = keys[column][index]
                if value is None:
                    continue
                line = earlier[column].setdefault(value, row.line)
                if line == row.line:
                    taken[column].append((value, line))
                    continue
                self.report.error(
                    row.line,
                    column,
                    _("Line %(line)s has the same %(column)s.")
                    % {"line": line, "column": column},
                )
                break
            else:
                first.append(row)
        for column, pairs in taken.items():
            self.seen.add(column, pairs)
        return first

    def write(self, rows):
        report = self.report
        self.chunks += 1
        users = self.existing_users(rows)
        # The chunk's existing members, locked in primary-key order (as every
        # ledger writer locks them) before anything about them is decided.
        members = {
            member.user_id: member
            for member in Member.objects.select_for_update()
            .filter(AnyOf("user_id", [pk for pk in users.values() if pk]))
            .order_by("pk")
            .only("pk", "user_id", "phone", *consent.FIELDS.values())
        }
        phone_owners = dict(
            Member.objects.exclude(phone="")  # the phone index is partial
            .filter(AnyOf("phone", [row.phone for row in rows if row.phone]))
            .values_list("phone", "user_id")
        )
        good = []
        for row in rows:
            user_id = users.get(row.key)
            if user_id is False:
                report.error(
                    row.line, "email", _("Several customers have this e-mail address.")
                )
                continue
            owner = phone_owners.get(row.phone)
            if row.phone and owner is not None and owner != user_id:
                report.error(
                    row.line, "phone", _("Another member has this phone number.")
                )
                continue
            good.append(row)
        if not report.ok:
            return  # nothing will be kept: no need to write the rest
        new_rows = [row for row in good if row.key not in users]
        joining = [
            row for row in good if row.key in users and users[row.key] not in members
        ]
        known = [row for row in good if users.get(row.key) in members]
        for row in new_rows:
            row.outcome = "created"
        for row in joining:
            row.outcome = "joined"
        created_users = self.create_users(new_rows)
        users.update(created_users)
        fresh = self.create_members(new_rows + joining, users)
        self.update_known(known, users, members)
        self.open_balances(good, users, fresh, members)
        for row in good:
            setattr(report, row.outcome, getattr(report, row.outcome) + 1)
            if len(report.preview) < PREVIEW_ROWS:
                report.preview.append(
                    {
                        "line": row.line,
                        "email": row.email,
                        "phone": row.phone,
                        "points": row.points,
                        "outcome": row.outcome,
                    }
                )

    def existing_users(self, rows):
        """``{address: user id}`` (``False`` for an address several customers share).

        The customer table has no index on the lowercased address, so each
        lookup reads it whole. A file of one chunk does that once; from the
        second chunk on, the addresses are read once into an indexed temporary
        table (:class:`CustomerIndex`) and each chunk looks them up there."""
        keys = [row.key for row in rows]
        if self.customers is None and self.chunks > 1 and CustomerIndex.usable():
            self.customers = CustomerIndex(self.User)
        if self.customers is not None:
            pairs = self.customers.find(keys)
        else:
            pairs = (
                self.User.objects.annotate(key=Lower("email"))
                .filter(AnyOf(Lower("email"), keys))
                .values_list("pk", "key")
            )
        found = {}
        for pk, key in pairs:
            found[key] = False if key in found else pk
        return found

    def create_users(self, rows):
        if not rows:
            return {}
        unusable = make_password(None)
        values = []
        for row in rows:
            fields = {"email": row.email, "password": unusable}
            if "username" in self.user_fields:
                fields["username"] = secrets.token_hex(15)
            if "first_name" in self.user_fields:
                fields["first_name"] = row.first_name
                fields["last_name"] = row.last_name
            if "date_joined" in self.user_fields:
                fields["date_joined"] = row.joined_at or self.now
            values.append(fields)
        ids = insert_rows(self.User, values)
        if self.customers is not None:
            self.customers.created(ids)
        return {row.key: pk for row, pk in zip(rows, ids, strict=True)}

    def new_numbers(self, count):
        numbers = set()
        while len(numbers) < count:
            wanted = {
                f"M{secrets.randbelow(10**NUMBER_DIGITS):0{NUMBER_DIGITS}d}"
                for _ in range(count - len(numbers))
            }
            wanted -= numbers
            taken = set(
                Member.objects.filter(AnyOf("number", wanted)).values_list(
                    "number", flat=True
                )
            )
            numbers |= wanted - taken
        return list(numbers)

    def create_members(self, rows, users):
        """New members of these rows' customers, opening balance included in their
        cached figures (the ledger rows follow in ``open_balances``); returns
        ``{user id: member id}``."""
        if not rows:
            return {}
        numbers = self.new_numbers(len(rows))
        values = []
        for row, number in zip(rows, numbers, strict=True):
            values.append(
                {
                    "user_id": users[row.key],
                    "number": number,
                    "channel": Member.Channel.IMPORT.value,
                    "joined_at": row.joined_at or self.now,
                    "available": row.points,
                    "lifetime_earned": row.points,
                    "phone": row.phone,
                    "language": row.language,
                    "birth_month": row.birth_month,
                    "birth_day": row.birth_day,
                    **{
                        consent.FIELDS[purpose]: purpose in row.consents
                        for purpose in consent.SIGNUP_PURPOSES
                    },
                }
            )
        ids = insert_rows(Member, values)
        join_entry_tier(ids)
        self.record_consents(
            (pk, purpose)
            for row, pk in zip(rows, ids, strict=True)
            for purpose in row.consents
        )
        return {value["user_id"]: pk for value, pk in zip(values, ids, strict=True)}

    def update_known(self, rows, users, members):
        """Members already in the programme: a phone where they have none and the
        consents the file gives (an import never withdraws one); their opening
        balance, if any, follows in ``open_balances``."""
        phones = {}
        granted = []
        # A purpose the member has answered here (given, or withdrawn) is theirs:
        # an older system's "yes" does not overrule a withdrawal.
        answered = set(
            ConsentChange.objects.filter(
                AnyOf("member_id", [members[users[row.key]].pk for row in rows])
            ).values_list("member_id", "purpose")
        )
        for row in rows:
            member = members[users[row.key]]
            if row.phone and not member.phone:
                phones[member.pk] = row.phone
            new = [
                p
                for p in row.consents
                if not consent.has_consent(member, p)
                and (member.pk, p.value) not in answered
            ]
            granted.extend((member.pk, purpose) for purpose in new)
            row.outcome = "updated" if (member.pk in phones or new) else "unchanged"
        if phones:
            Member.objects.filter(pk__in=phones).update(
                phone=Case(
                    *(When(pk=pk, then=Value(phone)) for pk, phone in phones.items())
                )
            )
        for purpose in consent.Purpose:
            ids = [pk for pk, p in granted if p == purpose]
            if ids:
                Member.objects.filter(AnyOf("pk", ids)).update(
                    **{consent.FIELDS[purpose]: True}
                )
        self.record_consents(granted)

    def record_consents(self, pairs):
        actor_id = getattr(self.actor, "pk", None)
        actor_name = self.actor.get_username() if actor_id else ""
        insert_rows(
            ConsentChange,
            [
                {
                    "member_id": member_id,
                    "purpose": str(purpose),
                    "granted": True,
                    "source": consent.Source.IMPORT.value,
                    "actor_id": actor_id,
                    "actor_name": actor_name,
                    "created_at": self.now,
                }
                for member_id, purpose in pairs
            ],
        )

    def open_balances(self, rows, users, fresh, members):
        """One ``opening`` posting, lot and entry per member with points, keyed by
        the member: a member already given an opening balance gets nothing more."""
        wanted = {}
        for row in rows:
            if row.points <= 0:
                continue
            user_id = users[row.key]
            pk = fresh[user_id] if user_id in fresh else members[user_id].pk
            wanted[pk] = row
        if not wanted:
            return
        fresh_ids = set(fresh.values())
        # Members from before this import were locked by write(); skip those whose
        # opening balance is already in the ledger.
        existing = {pk for pk in wanted if pk not in fresh_ids}
        done = set(
            Posting.objects.filter(
                AnyOf("key", [f"opening:{pk}" for pk in wanted])
            ).values_list("member_id", flat=True)
        )
        for pk in done:
            wanted.pop(pk).points = 0  # already given: nothing is added
        if not wanted:
            return
        actor_id = getattr(self.actor, "pk", None)
        actor_name = self.actor.get_username()[:255] if actor_id else ""
        reason = (_("Opening balance (import %s)") % self.label).strip()[:255]
        pks = list(wanted)
        postings = insert_rows(
            Posting,
            [
                {
                    "key": f"opening:{pk}",
                    "kind": Posting.Kind.OPENING.value,
                    "member_id": pk,
                    "created_at": self.now,
                    "reason": reason,
                    "actor_id": actor_id,
                    "actor_name": actor_name,
                }
                for pk in pks
            ],
        )
        lots = insert_rows(
            Lot,
            [
                {
                    "member_id": pk,
                    "source": Lot.Source.IMPORT.value,
                    "status": Lot.Status.ACTIVE.value,
                    "points": wanted[pk].points,
                    "remaining": wanted[pk].points,
                    "created_at": self.now,
                    "confirmed_at": self.now,
                    "expires_at": wanted[pk].expires_at or self.default_expiry,
                }
                for pk in pks
            ],
        )
        insert_rows(
            Entry,
            [
                {
                    "posting_id": posting,
                    "member_id": pk,
                    "lot_id": lot,
                    "available_change": wanted[pk].points,
                }
                for pk, posting, lot in zip(pks, postings, lots, strict=True)
            ],
        )
        older = {pk: row.points for pk, row in wanted.items() if pk in existing}
        if older:
            change = Case(
                *(When(pk=pk, then=Value(points)) for pk, points in older.items())
            )
            Member.objects.filter(pk__in=older).update(
                available=F("available") + change,
                lifetime_earned=F("lifetime_earned") + change,
            )
            for pk in older:
                if wanted[pk].outcome == "unchanged":
                    wanted[pk].outcome = "updated"
        self.report.balances += len(wanted)
        self.report.points += sum(row.points for row in wanted.values())


def import_members(binary, file_format, *, dry_run, actor=None, now=None, label=""):
    """Import (or, with ``dry_run``, check) a members file; returns the report."""
    return Importer(
        binary, file_format, dry_run=dry_run, actor=actor, now=now, label=label
    ).run()


# The dashboard's uploads ---------------------------------------------------------


def forget_old_files(now=None):
    """Delete the content of uploads not imported within ``IMPORT_KEEP_DAYS``
    (customers' e-mails and phones are not kept longer than needed); one still
    being checked or imported that long is marked as not imported. Returns how
    many files were deleted."""
    from datetime import timedelta

    from .conf import loyalty_settings
    from .models import MemberImport

    now = now or timezone.now()
    old = MemberImport.objects.filter(
        created_at__lt=now - timedelta(days=loyalty_settings.IMPORT_KEEP_DAYS),
        content__isnull=False,
    ).exclude(status=MemberImport.Status.IMPORTED)
    stuck = old.filter(
        status__in=[MemberImport.Status.CHECKING, MemberImport.Status.IMPORTING]
    )
    stuck.update(status=MemberImport.Status.FAILED)
    return old.update(content=None)


def process(import_id):
    """Check or import the uploaded file ``import_id``, by its status.

    Safe to run twice (a retried task, two workers): the upload's row is locked for
    the whole run, and a file already checked or imported is left alone. The
    import and the new status commit together.
    """
    from .models import MemberImport

    with transaction.atomic():
        record = MemberImport.objects.select_for_update().get(pk=import_id)
        if record.status not in (
            MemberImport.Status.CHECKING,
            MemberImport.Status.IMPORTING,
        ):
            return record.status
        dry_run = record.status == MemberImport.Status.CHECKING
        try:
            # A savepoint: whatever fails, the upload gets a status and a report,
            # its messages in the language of the staff user who uploaded it.
            with (
                transaction.atomic(),
                translation.override(record.language or settings.LANGUAGE_CODE),
            ):
                report = import_members(
                    io.BytesIO(bytes(record.content or b"")),
                    record.file_format,
                    dry_run=dry_run,
                    actor=record.user,
                    label=f"#{record.pk} {record.file_name}",
                )
        except Exception:
            logger.exception("Members import %s failed", record.pk)
            report = Report(dry_run=dry_run)
            with translation.override(record.language or settings.LANGUAGE_CODE):
                report.file_error = _(
                    "The file could not be processed (a customer changed meanwhile, or "
                    "the database refused a row); nothing was imported. Check it again."
                )
        if dry_run:
            record.check_report = report.as_dict()
            record.status = MemberImport.Status.CHECKED
        else:
            record.import_report = report.as_dict()
            if report.imported:
                record.status = MemberImport.Status.IMPORTED
                record.imported_at = timezone.now()
                record.content = None  # customers' data is not kept longer than needed
            else:
                record.status = MemberImport.Status.FAILED
        record.save()
        return record.status
