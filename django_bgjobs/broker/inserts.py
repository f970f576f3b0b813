"""The INSERT of one job, without the ORM's per-call SQL compilation.

``Model.save()`` compiles its INSERT anew on every call: for a single
enqueue (one transaction each) that compilation cost about as much as the
database's own work. The statement here is built once per connection alias
from ``Job``'s concrete fields; the values still go through each field's
``get_db_prep_save``, so every database gets them exactly as the ORM would
send them. As with ``bulk_create``, ``pre_save`` and ``post_save`` are not
sent.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import Field

from ..models import Job

_PK = "id"
#: alias -> (SQL, fields whose values it takes, returns the new id).
_STATEMENTS: dict[str, tuple[str, list[Field[Any, Any]], bool]] = {}


def _statement(alias: str) -> tuple[str, list[Field[Any, Any]], bool]:
    connection = connections[alias]
    cached = _STATEMENTS.get(alias)
    if cached is not None:
        return cached
    meta = Job._meta
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})"
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(_PK)}"
    _STATEMENTS[alias] = (sql, fields, returning)
    return _STATEMENTS[alias]


def insert_job(job: Job, using: str) -> None:
    """INSERT the unsaved ``job`` in database ``using`` and set its id, in
    the caller's transaction (or autocommit)."""
    connection = connections[using]
    sql, fields, returning = _statement(using)
    params = [
        field.get_db_prep_save(getattr(job, field.attname), connection)
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            job.pk = cursor.fetchone()[0]
        else:
            job.pk = connection.ops.last_insert_id(
                cursor,
                Job._meta.db_table,
                _PK,
            )
    job._state.adding = False
    job._state.db = using
