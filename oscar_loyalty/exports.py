"""Downloads of the programme's data as CSV or XLSX: spreadsheet formulas
escaped, and every download recorded (:class:`~oscar_loyalty.models.ExportRecord`).

A cell a spreadsheet would read as a formula (text starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return, e.g. a shopper's name
``=HYPERLINK(...)``) is written with a leading apostrophe, so it shows as the
text it is and runs nothing. Numbers, dates and empty cells are written as they
are.
"""

import csv
import io
from datetime import datetime
from decimal import Decimal

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from .models import ExportRecord

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def safe_cell(value):
    """``value`` as a spreadsheet may show it without running it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        return (
            timezone.localtime(value).replace(tzinfo=None)
            if timezone.is_aware(value)
            else value
        )
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class _Echo:
    def write(self, value):
        return value


def csv_response(filename, header, rows):
    """A streamed CSV download (UTF-8 with a byte-order mark, which Excel needs to
    read Chinese text); rows are read as they are written."""

    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff" + writer.writerow([safe_cell(cell) for cell in header])
        for row in rows:
            yield writer.writerow([_csv_text(safe_cell(cell)) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def _csv_text(value):
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return value


def xlsx_cell(value):
    """:func:`safe_cell`, without the control characters an XLSX file may not
    hold (a name typed with one would otherwise fail the whole download)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    value = safe_cell(value)
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def xlsx_response(filename, header, rows):
    """An XLSX download. openpyxl's write-only mode keeps no cells, but the file
    itself is built in memory before it is sent (the format is a zip archive):
    for very large lists, CSV streams."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append([xlsx_cell(cell) for cell in header])
    for row in rows:
        sheet.append([xlsx_cell(cell) for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getbuffer(), content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response


def export(request, *, kind, file_format, header, rows, count, filters):
    """Answer the download and record it (who, what, filters, how many rows);
    an XLSX file is recorded once it is built, a CSV stream as it starts."""
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    filename = f"loyalty-{kind.replace('_', '-')}-{stamp}"
    if file_format == ExportRecord.Format.XLSX:
        response = xlsx_response(filename, header, rows)
    else:
        response = csv_response(filename, header, rows)
    user = request.user
    ExportRecord.objects.create(
        user=user,
        user_name=user.get_username(),
        kind=kind,
        format=file_format,
        filters=filters,
        rows=count,
    )
    return response


def filters_of(form):
    """The filters a (bound, valid) search form was given, as text, for the
    record; {} when it was not valid."""
    if not form.is_valid():
        return {}
    return {
        name: str(value)
        for name, value in form.cleaned_data.items()
        if value not in (None, "", [], ())
    }
