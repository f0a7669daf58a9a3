"""Inserting many rows at once without building a model instance for each.

``bulk_create`` builds a model instance per row and prepares every value of every
field through the field; for the hundreds of thousands of rows of an import that
is most of the time. :func:`insert_rows` takes plain values (already the right
Python types: ``str``, ``int``, ``bool``, aware ``datetime``, ``None``) and, on
PostgreSQL, sends one ``INSERT … SELECT * FROM unnest(…) RETURNING id`` per call;
elsewhere it falls back to ``bulk_create``. Fields a row leaves out get their
model default, computed once per call (a callable default such as a UUID would be
the same for every row: give such fields a value).
"""

import re

from django.db import connection
from django.db.models import NOT_PROVIDED


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
    columns = names + list(defaults)
    fields = [opts.get_field(name) for name in columns]
    quote = connection.ops.quote_name
    # Cast to the column's base type: varchar(n) would cut long text silently;
    # varchar lets the column refuse it.
    arrays = ", ".join(f"%s::{array_type(field)}[]" for field in fields)
    sql = (
        f"INSERT INTO {quote(opts.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT * FROM unnest({arrays}) RETURNING {quote(opts.pk.column)}"
    )
    params = [[row[name] for row in rows] for name in names]
    params += [[value] * len(rows) for value in defaults.values()]
    with connection.cursor() as cursor:
        # PostgreSQL returns the new ids in the order of the SELECT, as Django's
        # own bulk_create (UNNEST on PostgreSQL) relies on too.
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()]


def array_type(field):
    return re.sub(r"\(\d+\)$", "", field.db_type(connection))
