"""Inserting many rows at once without building a model instance for each.

``bulk_create`` builds a model instance per row and prepares every value of every
field through the field; for the hundreds of thousands of rows of an import that
is most of the time. :func:`insert_rows` takes plain values (already the right
Python types: ``str``, ``int``, ``bool``, aware ``datetime``, ``None``) and, on
PostgreSQL, takes the ids from the table's sequence and sends the rows with
``COPY`` (the column types check every value: too long a text is refused, never
cut); elsewhere it falls back to ``bulk_create``. Fields a row leaves out get their
model default, computed once per call (a callable default such as a UUID would be
the same for every row: give such fields a value).
"""

import json

from django.db import connection
from django.db.models import NOT_PROVIDED, F, Lookup


def _defaults(model, names):
    """``{field name: default}`` for the concrete fields the rows leave out."""
    defaults = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in names or field.name in names:
            continue
        if field.has_default():
            defaults[field.attname] = field.get_default()
        elif field.null:
            defaults[field.attname] = None
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            defaults[field.attname] = field.pre_save(model(), add=True)
        elif field.db_default is not NOT_PROVIDED:
            continue  # the database fills it in
        elif field.blank and field.get_internal_type() in ("CharField", "TextField"):
            defaults[field.attname] = ""
        else:
            raise ValueError(f"{model.__name__}.{field.name} needs a value")
    return defaults


def insert_rows(model, rows):
    """Insert ``rows`` (dicts of field attnames, e.g. ``member_id``); returns the
    new primary keys in the order of ``rows``."""
    if not rows:
        return []
    names = list(rows[0])
    defaults = _defaults(model, set(names))
    if connection.vendor != "postgresql":
        objects = model.objects.bulk_create(model(**defaults, **row) for row in rows)
        return [obj.pk for obj in objects]
    opts = model._meta
    quote = connection.ops.quote_name
    fields = [opts.pk] + [opts.get_field(name) for name in names + list(defaults)]
    constant = tuple(defaults.values())
    with connection.cursor() as cursor:
        # The ids first (the table's own sequence), then the rows by COPY, the
        # fastest way into PostgreSQL; the ids come back in the rows' order.
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) "
            "FROM generate_series(1, %s)",
            [opts.db_table, opts.pk.column, len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
        columns = ", ".join(quote(field.column) for field in fields)
        with cursor.cursor.copy(
            f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN"
        ) as copy:
            for pk, row in zip(ids, rows, strict=True):
                copy.write_row((pk, *(row[name] for name in names), *constant))
    return ids


class AnyOf(Lookup):
    """``expression`` is one of ``values``, for thousands of values at once:
    ``= ANY(%s)`` with one array parameter on PostgreSQL, where ``__in`` would
    prepare each value through the field and send a placeholder for each (a
    query of 5,000 placeholders costs more to build than to run); one JSON
    array through ``json_each`` on SQLite; ``IN`` with the values elsewhere.
    Use as a filter: ``.filter(AnyOf("user_id", ids))``. The values must
    already be of the column's Python type (numbers or text on SQLite)."""

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, lhs, rhs):
        super().__init__(F(lhs) if isinstance(lhs, str) else lhs, list(rhs))

    def get_prep_lookup(self):
        return self.rhs

    def as_sql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        db_type = self.lhs.output_field.cast_db_type(connection)
        sql, params = any_of_sql(connection, lhs_sql, db_type, self.rhs)
        return sql, (*lhs_params, *params)


def any_of_sql(connection, column_sql, db_type, values):
    """SQL and parameters for "``column_sql`` is one of ``values``" (see
    :class:`AnyOf`), for raw queries as well."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column_sql} = ANY(%s::{db_type}[])", (values,)
    if connection.vendor == "sqlite":
        # One JSON array parameter: an IN list of a whole chunk could pass
        # SQLite's limit on parameters per statement (32,766 by default).
        return f"{column_sql} IN (SELECT value FROM json_each(%s))", (
            json.dumps(values),
        )
    if not values:
        return "1 = 0", ()
    return f"{column_sql} IN ({', '.join(['%s'] * len(values))})", tuple(values)
