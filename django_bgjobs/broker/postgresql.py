"""PostgreSQL: the claim's subquery takes ``FOR UPDATE SKIP LOCKED``, so rows
another worker is claiming are skipped, never waited for. Recording a batch is
one statement: the fenced UPDATE and the INSERT of attempts share a CTE."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..conf import get_settings
from ..status import FINISHED, JobStatus
from .base import ATTEMPT_COLUMNS, Broker, Record, _in

#: The batch as one JSON parameter: a statement of constant text, parsed once
#: by psycopg's client-side binding (thousands of placeholders are not).
RECORD_SQL = (
    "WITH v AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r ("
    "id bigint, attempt integer, status varchar, result jsonb, error text, "
    "run_at timestamptz, finished_at timestamptz, expires_at timestamptz, "
    "uncharge integer, worker varchar, started_at timestamptz, "
    "ended_at timestamptz, outcome varchar, error_class varchar, "
    "error_message text, traceback text)), "
    "done AS (UPDATE bgjobs_job SET status = v.status, result = v.result, "
    "error = v.error, run_at = COALESCE(v.run_at, bgjobs_job.run_at), "
    "finished_at = v.finished_at, expires_at = v.expires_at, "
    "uncharged = bgjobs_job.uncharged + v.uncharge, lease_expires_at = NULL, "
    f"active_key = CASE WHEN v.status IN {_in(FINISHED)} THEN NULL "
    "ELSE bgjobs_job.active_key END "
    "FROM v WHERE bgjobs_job.id = v.id AND bgjobs_job.attempt = v.attempt "
    "AND bgjobs_job.status = %s RETURNING bgjobs_job.id) "
    f"INSERT INTO bgjobs_attempt ({', '.join(ATTEMPT_COLUMNS)}) "
    "SELECT v.id, v.attempt, v.worker, v.started_at, v.ended_at, v.outcome, "
    "v.error_class, v.error_message, v.traceback "
    "FROM v JOIN done ON done.id = v.id RETURNING job_id"
)


#: The LISTEN/NOTIFY channel; the payload is a queue name. NOTIFY is sent at
#: commit, and PostgreSQL folds equal notifications of one transaction.
CHANNEL = "bgjobs_wake"


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


class PostgreSQLBroker(Broker):
    skip_locked = " FOR UPDATE SKIP LOCKED"
    apply_is_one_statement = True

    def announce(self, queues: Iterable[str]) -> None:
        if not get_settings().LISTEN_NOTIFY:
            return
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_notify(%s, q) FROM unnest(%s::text[]) AS q",
                [CHANNEL, sorted(set(queues))],
            )

    def apply(self, records: Sequence[Record]) -> set[int]:
        # ensure_ascii=False: text that cannot be encoded (a lone surrogate in
        # an error message) fails in the driver as it always did, not as a
        # jsonb error.
        batch = json.dumps([self._row(r) for r in records], ensure_ascii=False)
        with self.connection.cursor() as cursor:
            cursor.execute(RECORD_SQL, [batch, *FINISHED, JobStatus.RUNNING])
            return {row[0] for row in cursor.fetchall()}

    @staticmethod
    def _row(r: Record) -> dict[str, Any]:
        job = r.job
        return {
            "id": job.id,
            "attempt": job.attempt,
            "status": r.status,
            # JSON null maps to SQL NULL, as a None result always did.
            "result": r.result,
            "error": r.error,
            "run_at": _iso(r.run_at),
            "finished_at": _iso(r.finished_at if r.status in FINISHED else None),
            "expires_at": _iso(r.expires_at),
            "uncharge": r.uncharge,
            "worker": job.worker,
            "started_at": _iso(job.started_at),
            "ended_at": _iso(r.finished_at),
            "outcome": r.outcome,
            "error_class": r.error_class,
            "error_message": r.error_message[:10000],
            "traceback": r.traceback[:50000],
        }
