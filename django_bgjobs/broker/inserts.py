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

import json
from collections.abc import Sequence
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


#: The columns that differ between the jobs of one ``enqueue_many`` call.
VARYING = ("args", "kwargs", "limit_key")
#: Rows per statement where each row's values are parameters (not PostgreSQL).
ROWS_PER_STATEMENT = 500
#: Rows per PostgreSQL statement (one JSON parameter, whatever the size).
PG_ROWS_PER_STATEMENT = 10_000


def _json_rows(rows: Sequence[tuple[str, str, str | None]]) -> str:
    """One JSON array of ``[args, kwargs, limit_key]`` rows, from the
    arguments' JSON as they are: a single text parameter is quoted once,
    where three arrays were dumped element by element."""
    dump = json.dumps
    return (
        "["
        + ",".join(
            f"[{args},{kwargs},{'null' if key is None else dump(key)}]"
            for args, kwargs, key in rows
        )
        + "]"
    )


def can_insert_many(using: str) -> bool:
    """True if ``insert_many`` can return the new ids on this database."""
    return bool(connections[using].features.can_return_rows_from_bulk_insert)


def insert_many(
    prototype: Job,
    rows: Sequence[tuple[str, str, str | None]],
    using: str,
) -> list[int]:
    """INSERT one job per ``(args JSON, kwargs JSON, limit_key)`` row, every
    other column as in the unsaved ``prototype``; return the new ids in row
    order. Needs ``can_insert_many(using)``.

    The common values are prepared once, not once per job: on PostgreSQL the
    statement is one ``INSERT ... SELECT`` over ``jsonb_array_elements`` of
    one JSON document (a single text parameter) per ``PG_ROWS_PER_STATEMENT``
    jobs; elsewhere a multi-row ``VALUES`` of ``ROWS_PER_STATEMENT`` rows at
    a time.
    """
    connection = connections[using]
    meta = Job._meta
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    table = quote(meta.db_table)
    common = {
        field.attname: field.get_db_prep_save(
            getattr(prototype, field.attname), connection
        )
        for field in fields
        if field.attname not in VARYING
    }
    ids: list[int] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            casts = {"args": "(e->0)", "kwargs": "(e->1)", "limit_key": "(e->>2)"}
            select = ", ".join(casts.get(field.attname, "%s") for field in fields)
            sql = (
                f"INSERT INTO {table} ({columns}) SELECT {select} FROM "
                "jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS u(e, n) "
                f"ORDER BY u.n RETURNING {quote(_PK)}"
            )
            head = [common[f.attname] for f in fields if f.attname in common]
            for start in range(0, len(rows), PG_ROWS_PER_STATEMENT):
                chunk = rows[start : start + PG_ROWS_PER_STATEMENT]
                cursor.execute(sql, [*head, _json_rows(chunk)])
                ids += [row[0] for row in cursor.fetchall()]
            return ids
        size = ROWS_PER_STATEMENT
        if connection.features.max_query_params:
            size = max(
                1, min(size, connection.features.max_query_params // len(fields))
            )
        marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            params = []
            for args, kwargs, limit_key in chunk:
                varying = {"args": args, "kwargs": kwargs, "limit_key": limit_key}
                params += [
                    varying[field.attname]
                    if field.attname in varying
                    else common[field.attname]
                    for field in fields
                ]
            values = ", ".join([marks] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {values} "
                f"RETURNING {quote(_PK)}",
                params,
            )
            ids += [row[0] for row in cursor.fetchall()]
    return ids
