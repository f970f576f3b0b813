"""How an idle worker hears of new work; never the source of truth.

``get_listener`` returns the ``Listener`` that calls ``on_wake`` when jobs
of the worker's queues become ready:

- ``PgListener`` (LISTEN/NOTIFY) on PostgreSQL with psycopg 3 and
  ``LISTEN_NOTIFY`` on;
- ``RedisListener`` when ``REDIS_CACHE`` names a django-redis cache;
- both together (``Listeners``) when both apply;
- otherwise ``Polling``, which never calls it.

Workers poll in any case, less often while a listener is connected
(``WAKE_POLL_INTERVAL`` instead of ``POLL_INTERVAL``). ``announce`` is the
sending side that is not the database's own: a Redis publish on commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from django.db import connections, transaction

from ..conf import get_settings
from .base import Listener, Listeners, Polling

__all__ = ["Listener", "Listeners", "Polling", "announce_on_commit", "get_listener"]


def get_listener(
    using: str, queues: Sequence[str] | None, on_wake: Callable[[], None]
) -> Listener:
    """Return the wake-up listener for database ``using`` (not started)."""
    conf = get_settings()
    found: list[Listener] = []
    if connections[using].vendor == "postgresql" and conf.LISTEN_NOTIFY:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if is_psycopg3:
            from .pg_notify import PgListener

            found.append(PgListener(using, queues, on_wake))
    if conf.REDIS_CACHE:
        from .redis_pubsub import RedisListener

        found.append(RedisListener(conf.REDIS_CACHE, queues, on_wake))
    if not found:
        return Polling()
    return found[0] if len(found) == 1 else Listeners(found)


def announce(queues: Iterable[str]) -> None:
    """Wake idle workers of ``queues`` through Redis, when configured.

    PostgreSQL's NOTIFY is sent by the database (a trigger, and the broker)
    and needs nothing here.
    """
    alias = get_settings().REDIS_CACHE
    if alias:
        from .redis_pubsub import publish

        publish(alias, queues)


class _Announcement:
    """An ``on_commit`` callback that publishes the queues it gathered."""

    def __init__(self, queues: set[str]) -> None:
        self.queues = queues

    def __call__(self) -> None:
        announce(self.queues)


def announce_on_commit(queues: Iterable[str], using: str) -> None:
    """``announce`` once the current transaction on ``using`` commits.

    Enqueues in one transaction (and savepoint) share one callback, so a
    queue is published once per commit however many enqueues it had.
    """
    if not get_settings().REDIS_CACHE:
        return
    connection = connections[using]
    if connection.in_atomic_block:
        # Django keeps (savepoint ids, callback, robust) per registration,
        # and drops those of a rolled-back savepoint.
        current = set(connection.savepoint_ids)
        for entry in getattr(connection, "run_on_commit", ()):
            sids, callback = entry[0], entry[1]
            if isinstance(callback, _Announcement) and sids == current:
                callback.queues.update(queues)
                return
    # robust: a failure after the commit is logged, never raised at the caller.
    transaction.on_commit(_Announcement(set(queues)), using=using, robust=True)
