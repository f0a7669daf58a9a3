"""The import figures; run by :mod:`bench.imports` in a subprocess.

``python -m bench._import_worker --database-url URL --scale S [--prefix P]``:

1. writes a CSV of ``S`` × 100,000 customers to a temporary file, a row at a
   time: e-mail, names, a phone, an opening balance for four rows in five, a
   birthday, a language and consents;
2. times ``import_members`` on it (PostgreSQL, one transaction);
3. checks: a member per row, an ``opening`` posting, lot and entry per row with
   points, the points they add up to, and ``find_drift`` on a sample of members;
4. imports the same file again and checks that nothing was added.

With ``--prefix tenth_`` only the memory growth is printed, as
``import_growth_tenth_mb``.
"""

import argparse
import csv
import resource
import sys
import tempfile
import time

from bench import _django, emit, info

FULL_SCALE_ROWS = 100_000
DRIFT_SAMPLE = 2_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._import_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--prefix", default="")
    return parser.parse_args(argv)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "email", "first_name", "last_name", "phone", "points", "birthday",
                "language", "email_consent", "sms_consent", "profiling_consent",
            ]
        )  # fmt: skip
        for n in range(1, rows + 1):
            writer.writerow(
                [
                    f"customer{n}@example.com",
                    f"First{n}",
                    f"Last{n}",
                    f"+86 139 {n // 10000:04d} {n % 10000:04d}",
                    (n % 5) * 250,
                    f"{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                    "zh-hans" if n % 2 else "en",
                    "yes" if n % 3 else "no",
                    "yes" if n % 7 == 0 else "no",
                    "yes" if n % 4 == 0 else "",
                ]
            )
    return sum(((n % 5) * 250) for n in range(1, rows + 1)), sum(
        1 for n in range(1, rows + 1) if n % 5
    )


def main(argv=None):
    args = parse_args(argv)
    rows = max(round(FULL_SCALE_ROWS * args.scale), 10)
    _django.setup(args.database_url)
    _django.migrate("import")

    from django.db.models import Sum

    from oscar_loyalty.audit import find_drift
    from oscar_loyalty.imports import import_members
    from oscar_loyalty.models import Entry, Lot, Member, Posting

    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        points, balances = write_file(handle.name, rows)
        baseline = peak_mb()
        with open(handle.name, "rb") as binary:
            started = time.perf_counter()
            report = import_members(binary, "csv", dry_run=False, label="bench")
            seconds = time.perf_counter() - started
        peak = peak_mb()
        info(
            f"import: {rows} rows in {seconds:.1f} s; peak {peak:.0f} MB "
            f"({baseline:.0f} MB before)"
        )
        if args.prefix:
            if not report.imported:
                info(f"import: WRONG: {report.as_dict()}")
                return 1
            emit(
                f"import_growth_{args.prefix.rstrip('_')}_mb", f"{peak - baseline:.1f}"
            )
            return 0

        problems = []
        if not report.imported or report.created != rows:
            problems.append(f"report: {report.as_dict()}")
        counts = {
            "members": Member.objects.count(),
            "postings": Posting.objects.filter(kind="opening").count(),
            "lots": Lot.objects.filter(source="import").count(),
            "entries": Entry.objects.filter(posting__kind="opening").count(),
        }
        expected = {
            "members": rows,
            "postings": balances,
            "lots": balances,
            "entries": balances,
        }
        if counts != expected:
            problems.append(f"rows: {counts}, expected {expected}")
        total = Member.objects.aggregate(total=Sum("available"))["total"]
        if total != points:
            problems.append(f"points: {total}, expected {points}")
        sample = list(
            Member.objects.order_by("?").values_list("pk", flat=True)[:DRIFT_SAMPLE]
        )
        problems += [str(p) for p in find_drift(member_ids=sample)[:10]]

        with open(handle.name, "rb") as binary:
            started = time.perf_counter()
            again = import_members(binary, "csv", dry_run=False, label="bench again")
            rerun = time.perf_counter() - started
        if again.unchanged != rows or again.balances or again.created:
            problems.append(f"second import: {again.as_dict()}")
        if Posting.objects.filter(kind="opening").count() != balances:
            problems.append("the second import wrote postings")

    emit("import_rows", rows)
    if problems:
        for problem in problems:
            info(f"import: WRONG: {problem}")
        for figure in ("import_seconds", "import_100k_members_seconds"):
            emit(figure, "failed (wrong result, see stderr)")
        return 1
    emit("import_seconds", f"{seconds:.1f}")
    if rows == FULL_SCALE_ROWS:
        emit("import_100k_members_seconds", f"{seconds:.1f}")
    else:
        emit("import_100k_members_seconds", f"not measured ({rows} rows; --scale 1)")
    emit("import_rows_per_second", f"{rows / seconds:.0f}")
    emit("import_peak_mb", f"{peak:.0f}")
    emit("import_growth_mb", f"{peak - baseline:.1f}")
    emit("import_rerun_seconds", f"{rerun:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
