"""How an idle worker hears of new work; never the source of truth.

``get_listener`` returns a ``Listener`` that calls ``on_wake`` when jobs of
the worker's queues become ready: ``PgListener`` (LISTEN/NOTIFY) on
PostgreSQL with psycopg 3 and ``LISTEN_NOTIFY`` on, otherwise ``Polling``,
which never calls it. Workers poll in any case, less often while a listener
is connected (``WAKE_POLL_INTERVAL`` instead of ``POLL_INTERVAL``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.db import connections

from ..conf import get_settings
from .base import Listener, Polling

__all__ = ["Listener", "Polling", "get_listener"]


def get_listener(
    using: str, queues: Sequence[str] | None, on_wake: Callable[[], None]
) -> Listener:
    """Return the wake-up listener for database ``using`` (not started)."""
    connection = connections[using]
    if connection.vendor == "postgresql" and get_settings().LISTEN_NOTIFY:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if is_psycopg3:
            from .pg_notify import PgListener

            return PgListener(using, queues, on_wake)
    return Polling()
