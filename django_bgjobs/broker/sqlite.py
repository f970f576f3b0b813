"""SQLite: the claim is one ``UPDATE ... RETURNING`` under ``BEGIN IMMEDIATE``.

SQLite has one writer at a time, so the write lock taken up front makes the
claim exclusive; WAL mode (set by the project's ``init_command``) lets readers
go on meanwhile. Needs SQLite 3.35 for RETURNING.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import django

from ..status import JobStatus
from .base import (
    FINAL_RECORD,
    NOT_PAUSED_SQL,
    Broker,
    Record,
    _in,
    _queue_filter,
    cancelled_where,
)


def use_real_variable_limit(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Let ``bulk_create`` use SQLite's real variable limit on Django < 6.0.

    Django 5.2 assumes the limit of SQLite < 3.32 (999 variables) and splits
    an INSERT of 200 jobs into five; SQLite 3.32+ allows 32766. Django 6.0
    reads the limit from the connection in the same way.
    """
    if connection.vendor == "sqlite" and django.VERSION < (6, 0):
        connection.features.max_query_params = connection.connection.getlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
        )


#: Taken around a worker process's own write transactions (claims and
#: recorded outcomes), so that its threads queue here and wake the moment the
#: writer before them commits. Left to SQLite, a thread that finds the
#: database locked sleeps in the busy handler for 1, 2, 5, 10 ... 100 ms
#: whatever the time the lock is actually held.
_write_lock = threading.Lock()


def _new_write_lock() -> None:
    global _write_lock
    _write_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_write_lock)


class SQLiteBroker(Broker):
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this process's write lock for an outermost transaction; a
        caller's transaction already holds SQLite's, and waiting here inside
        it could deadlock with a thread that waits for SQLite's."""
        if not self.connection.get_autocommit():
            yield
            return
        with _write_lock:
            yield

    def execute_claim(self, cursor: Any, sql: str, params: list[Any]) -> list[Any]:
        if not self.connection.get_autocommit():
            # Inside the caller's transaction: that transaction holds the lock.
            return super().execute_claim(cursor, sql, params)
        with _write_lock:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                rows = super().execute_claim(cursor, sql, params)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        return rows

    def record(self, records: Sequence[Record]) -> list[Record]:
        with self._writing():
            return super().record(records)

    def has_running(self, queues: Sequence[str] | None) -> bool:
        """As ``Broker.has_running``, through the partial index of running
        jobs: SQLite's planner preferred a full scan of the covering index
        ``bgjobs_job_queue_status`` (0.8 s at ten million rows)."""
        sql = (
            "SELECT 1 FROM bgjobs_job INDEXED BY bgjobs_job_running_lease "
            f"WHERE status = '{JobStatus.RUNNING.value}' {_queue_filter(queues, ())}"
            f"{NOT_PAUSED_SQL} LIMIT 1"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, list(queues or ()))
            return cursor.fetchone() is not None

    def honour_cancellations(self, records: Sequence[Record]) -> list[Record]:
        """Read the cancel flags with a write (a no-op ``UPDATE ...
        RETURNING``): a plain SELECT first would start the transaction as a
        reader, and its upgrade to writer fails at once with "database is
        locked" if another connection wrote meanwhile, where a write waits
        for the lock."""
        ids = sorted({r.job.id for r in records if r.status not in FINAL_RECORD})
        with self.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE bgjobs_job SET cancel_requested_at = cancel_requested_at "
                f"WHERE id IN {_in(ids)} AND status = %s "
                "RETURNING id, cancel_requested_at",
                [*ids, JobStatus.RUNNING],
            )
            flagged = {id_ for id_, requested in cursor.fetchall() if requested}
        return cancelled_where(records, flagged)
