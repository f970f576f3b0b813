"""PostgreSQL: the claim's subquery takes ``FOR UPDATE SKIP LOCKED``, so rows
another worker is claiming are skipped, never waited for."""

from __future__ import annotations

from .base import Broker


class PostgreSQLBroker(Broker):
    skip_locked = " FOR UPDATE SKIP LOCKED"
    # VALUES columns carry no type in PostgreSQL; NULLs and JSON text need one.
    value_casts = (
        "::bigint",
        "::integer",
        "::varchar",
        "::jsonb",
        "::text",
        "::timestamptz",
        "::timestamptz",
        "::timestamptz",
        "::integer",
    )
