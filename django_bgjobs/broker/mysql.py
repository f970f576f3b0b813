"""MySQL 8 and MariaDB 10.6+: select, then update, in one short transaction.

Neither has ``UPDATE ... RETURNING``: a claim locks its rows with ``SELECT ...
FOR UPDATE SKIP LOCKED`` (never waiting) and then updates them by id. Every
statement that may wait for a row lock reaches its rows through the primary
key in id order: InnoDB also locks the secondary index entries a statement
walks, and two paths to one row would deadlock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from ..models import Job
from ..status import CLAIMABLE, FINISHED, JobStatus
from .base import (
    CLAIM_COLUMNS,
    NOT_PAUSED_SQL,
    Broker,
    ClaimedJob,
    Heartbeat,
    Record,
    _in,
    _queue_filter,
    cancelled_where,
)

logger = logging.getLogger(__name__)

#: The per-record columns of the derived table that ``record`` joins to.
RECORD_COLUMNS = (
    "vid",
    "vattempt",
    "vstatus",
    "vresult",
    "verror",
    "vrun_at",
    "vfinished_at",
    "vexpires_at",
    "vuncharge",
)


class MySQLBroker(Broker):
    # -- claim ----------------------------------------------------------------

    def claim_sql(
        self, queues: Sequence[str] | None, limit: int, exclude: Sequence[str] = ()
    ) -> str:
        # MySQL 8 and MariaDB refuse LIMIT in an IN subquery, so the rows are
        # locked and read first, then claimed by id (``update_sql``). One
        # branch per claimable status lets each walk bgjobs_job_mysql_claim
        # (status, priority DESC, run_at, id) in order and lock at most
        # ``limit`` rows; one ``status IN`` would sort and lock every due row.
        queue_filter = _queue_filter(queues, exclude)
        branch = (
            f"(SELECT {CLAIM_COLUMNS}, run_at AS due FROM bgjobs_job "
            f"WHERE status = %s AND run_at <= %s {queue_filter} {NOT_PAUSED_SQL} "
            "ORDER BY priority DESC, run_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
        )
        branches = " UNION ALL ".join([branch] * len(CLAIMABLE))
        return f"{branches} ORDER BY priority DESC, due, id LIMIT %s"

    def claim_params(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        now: dt.datetime,
        lease: float,
        exclude: Sequence[str] = (),
    ) -> list[Any]:
        params: list[Any] = []
        for status in CLAIMABLE:
            params += [status, self.adapt(now), *(queues or ()), *exclude, limit]
        return [*params, limit]

    @staticmethod
    def update_sql(count: int) -> str:
        return (
            "UPDATE bgjobs_job FORCE INDEX (PRIMARY) SET status = %s, "
            "attempt = attempt + 1, "
            "started_at = %s, lease_expires_at = %s, worker = %s "
            f"WHERE id IN {_in([None] * count)}"
        )

    def claim(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        now: dt.datetime,
        lease: float,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` due jobs of ``queues`` (None: all) but those
        of ``exclude``, highest priority first.

        Two statements per batch, whatever its size: the locking SELECT and
        one UPDATE by id.
        """
        sql = self.claim_sql(queues, limit, exclude)
        params = self.claim_params(queues, limit, worker, now, lease, exclude)
        until = now + dt.timedelta(seconds=lease)
        atomic = transaction.atomic(using=self.using, savepoint=False)
        with atomic, self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())
            if not rows:
                return []
            ids = [row[0] for row in rows]
            cursor.execute(
                self.update_sql(len(ids)),
                [JobStatus.RUNNING, self.adapt(now), self.adapt(until), worker, *ids],
            )
        # The rows were read before the UPDATE bumped the attempt counter.
        return [
            self._claimed((*row[:6], row[6] + 1, *row[7:11]), worker, now)
            for row in rows
        ]

    # -- record ---------------------------------------------------------------

    @staticmethod
    def lock_sql(count: int) -> str:
        return (
            "SELECT id, attempt, cancel_requested_at FROM bgjobs_job FORCE INDEX (PRIMARY) "
            f"WHERE id IN {_in([None] * count)} AND status = %s "
            "ORDER BY id FOR UPDATE"
        )

    def record_sql(self, count: int) -> str:
        first = "SELECT " + ", ".join(f"%s AS {name}" for name in RECORD_COLUMNS)
        rest = " UNION ALL SELECT " + ", ".join(["%s"] * len(RECORD_COLUMNS))
        finished = _in(FINISHED)
        # Each SET reads only the old row and the derived table, never a column
        # assigned before it, so MySQL's left-to-right SET order cannot matter.
        return (
            "UPDATE bgjobs_job AS j FORCE INDEX (PRIMARY) "
            f"INNER JOIN ({first}{rest * (count - 1)}) AS v "
            "ON j.id = v.vid AND j.attempt = v.vattempt "
            "SET j.status = v.vstatus, j.result = v.vresult, j.error = v.verror, "
            "j.run_at = COALESCE(v.vrun_at, j.run_at), "
            "j.finished_at = v.vfinished_at, j.expires_at = v.vexpires_at, "
            "j.uncharged = j.uncharged + v.vuncharge, j.lease_expires_at = NULL, "
            f"j.active_key = CASE WHEN v.vstatus IN {finished} THEN NULL "
            "ELSE j.active_key END "
            "WHERE j.status = %s"
        )

    def record(self, records: Sequence[Record]) -> list[Record]:
        """Apply a batch of outcomes; return those whose fence held.

        The fenced rows are locked first (``SELECT ... FOR UPDATE``), then
        changed by one UPDATE joined to the batch's values; a record whose job
        is no longer running under its attempt number is left out.
        """
        if not records:
            return []
        with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
            ids = sorted({r.job.id for r in records})
            cursor.execute(self.lock_sql(len(ids)), [*ids, JobStatus.RUNNING])
            rows = cursor.fetchall()
            held = {(id_, attempt) for id_, attempt, _ in rows}
            records = cancelled_where(records, {row[0] for row in rows if row[2]})
            applied = [r for r in records if (r.job.id, r.job.attempt) in held]
            if applied:
                cursor.execute(
                    self.record_sql(len(applied)), self.record_params(applied)
                )
            self._write_attempts(applied)
            self._write_dead_letters(
                [r for r in applied if r.status == JobStatus.FAILED]
            )
        kept = {id(r) for r in applied}
        _log_refused([r for r in records if id(r) not in kept])
        return applied

    # -- leases ---------------------------------------------------------------

    def heartbeat(self, worker: str, now: dt.datetime, lease: float) -> Heartbeat:
        """Extend the lease of every job ``worker`` runs.

        Two statements: a plain read of the ids, then an UPDATE by primary
        key. One UPDATE filtered on ``status`` would walk the status index
        and deadlock with the recorder, which holds the rows it records.
        """
        until = now + dt.timedelta(seconds=lease)
        running = Job.objects.using(self.using).filter(
            worker=worker, status=JobStatus.RUNNING
        )
        rows = dict(running.values_list("id", "cancel_requested_at"))
        if not rows:
            return Heartbeat(renewed=0, cancelled=set())
        ids = sorted(rows)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE bgjobs_job FORCE INDEX (PRIMARY) SET lease_expires_at = %s "
                f"WHERE id IN {_in(ids)} AND worker = %s AND status = %s",
                [self.adapt(until), *ids, worker, JobStatus.RUNNING],
            )
            renewed = int(cursor.rowcount)
        return Heartbeat(renewed, {id_ for id_, flag in rows.items() if flag})


def _log_refused(records: Sequence[Record]) -> None:
    for r in records:
        logger.warning(
            "late outcome refused job_id=%s attempt=%s outcome=%s: the job "
            "is no longer running under this attempt",
            r.job.id,
            r.job.attempt,
            r.outcome,
        )
