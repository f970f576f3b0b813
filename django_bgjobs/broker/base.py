"""The broker contract and the SQL it shares across vendors.

A claim is one statement; recording a batch of outcomes is one fenced UPDATE
(``WHERE id = ? AND attempt = ? AND status = 'running'``) plus one INSERT of
attempts and, for jobs that gave up, one INSERT of dead letters, all in one
transaction. A stale attempt's outcome matches no row and changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError, connections, transaction
from django.db.models import F, Q

from .. import registry
from ..conf import get_settings
from ..models import Attempt, DeadLetter, Job, JobQuerySet, Lease, QueueState, Worker
from ..status import CLAIMABLE, FINISHED, AttemptOutcome, JobStatus

if TYPE_CHECKING:
    from .pruning import Cuts

logger = logging.getLogger(__name__)

# The same statuses, in the same order, as the condition of the partial index.
CLAIMABLE_SQL = "(" + ", ".join(f"'{status}'" for status in CLAIMABLE) + ")"
#: The claim's filter on paused queues: read in the claim statement itself, so
#: a pause holds at every worker's next claim. ``name`` is a primary key (never
#: NULL), so NOT IN cannot turn unknown.
NOT_PAUSED_SQL = (
    "AND queue NOT IN (SELECT name FROM bgjobs_queue WHERE paused_at IS NOT NULL)"
)
CLAIM_COLUMNS = (
    "id, task, queue, priority, args, kwargs, attempt, uncharged, max_attempts, "
    "timeout, result_ttl"
)
ATTEMPT_COLUMNS = (
    "job_id",
    "number",
    "worker",
    "started_at",
    "finished_at",
    "outcome",
    "error_class",
    "error_message",
    "traceback",
)


@dataclasses.dataclass
class ClaimedJob:
    """A job a worker holds: what it needs to run it and to record the run."""

    id: int
    task: str
    queue: str
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    uncharged: int
    max_attempts: int
    timeout: float | None
    result_ttl: float | None
    worker: str
    started_at: dt.datetime
    #: Set when the heartbeat sees that an operator cancelled this run.
    cancel: threading.Event = dataclasses.field(
        default_factory=threading.Event, compare=False, repr=False
    )

    @property
    def charged(self) -> int:
        """Attempts spent, this run included."""
        return self.attempt - self.uncharged


@dataclasses.dataclass
class Record:
    """The outcome of one run and the status it moves the job to."""

    job: ClaimedJob
    status: str
    outcome: str
    finished_at: dt.datetime
    result: Any = None
    error_class: str = ""
    error_message: str = ""
    traceback: str = ""
    run_at: dt.datetime | None = None
    reason: str = ""

    @property
    def error(self) -> str:
        if not self.error_class:
            return ""
        return f"{self.error_class}: {self.error_message}"[:2000]

    @property
    def uncharge(self) -> int:
        return int(self.outcome in UNCHARGED_OUTCOMES)

    @property
    def expires_at(self) -> dt.datetime | None:
        """When the finished row may be pruned: by the age of its retention
        policy (task, queue or ``BGJOBS``), else by its ``result_ttl``."""
        if self.status not in FINISHED:
            return None
        job = self.job
        policy = registry.retention(
            job.task, job.queue, self.status == JobStatus.SUCCEEDED
        )
        ttl = job.result_ttl if policy is None else policy.age
        if ttl is None:
            return None
        return self.finished_at + dt.timedelta(seconds=ttl)

    def as_cancelled(self) -> Record:
        """Return this run's record for a job an operator cancelled while it
        ran: it ends ``cancelled`` whatever the run's own outcome (an error,
        a timeout, a release or a lost lease), unless it succeeded."""
        if self.status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED):
            return self
        ended = f"; the run ended with {self.error}" if self.error else ""
        return dataclasses.replace(
            self,
            status=JobStatus.CANCELLED,
            outcome=AttemptOutcome.CANCELLED,
            run_at=None,
            reason="",
            error_class=CANCELLED_ERROR,
            error_message=f"cancelled by an operator while running{ended}",
        )


#: Outcomes of runs that do not count against ``max_attempts``.
UNCHARGED_OUTCOMES = (AttemptOutcome.INTERRUPTED, AttemptOutcome.SNOOZED)
#: The error class recorded for a run cancelled by an operator.
CANCELLED_ERROR = "JobCancelled"


#: Record statuses that a cancellation does not change.
FINAL_RECORD = (JobStatus.SUCCEEDED, JobStatus.CANCELLED)


def ready_or_freed(records: Sequence[Record]) -> set[str]:
    """Return the queues in which ``records`` let another job be claimed: a
    retry or a release made a job ready, or a run ended in a queue whose
    concurrency limits count running jobs."""
    limits = get_settings().QUEUES
    return {
        r.job.queue
        for r in records
        if r.status in CLAIMABLE
        or (r.job.queue in limits and limits[r.job.queue].counts_running)
    }


def cancelled_where(records: Sequence[Record], flagged: set[int]) -> list[Record]:
    """Return ``records`` with those of the ``flagged`` jobs as cancelled."""
    return [r.as_cancelled() if r.job.id in flagged else r for r in records]


@dataclasses.dataclass
class Heartbeat:
    """What one heartbeat did: leases renewed, and the ids of the renewed
    jobs that an operator has asked to stop."""

    renewed: int
    cancelled: set[int]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _in(values: Sequence[Any]) -> str:
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _queue_filter(queues: Sequence[str] | None, exclude: Sequence[str]) -> str:
    """Return the claim's SQL condition on queues (parameters: ``queues``,
    then ``exclude``)."""
    sql = f"AND queue IN {_in(queues)} " if queues else ""
    return sql + (f"AND queue NOT IN {_in(exclude)} " if exclude else "")


def _in_statuses(jobs: JobQuerySet, statuses: Sequence[str]) -> JobQuerySet:
    """Return ``jobs`` whose status is one of ``statuses``, written as
    literals in the SQL: SQLite uses a partial index on ``status IN (...)``
    only when it can prove the index's condition from the SQL text; with
    bound parameters ``next_run_at`` scanned ``bgjobs_job_queue_status``
    instead (1.6 s at ten million rows, 1.5 ms with literals)."""
    known = set(JobStatus.values)
    if not set(statuses) <= known:
        raise ValueError(f"not job statuses: {sorted(set(statuses) - known)}")
    listed = ", ".join(f"'{status}'" for status in statuses)
    return cast(
        JobQuerySet,
        jobs.extra(where=[f"bgjobs_job.status IN ({listed})"]),  # noqa: S610
    )


def _unpaused(jobs: JobQuerySet) -> JobQuerySet:
    """Return ``jobs`` without the jobs of paused queues."""
    paused = QueueState.objects.using(jobs.db).filter(paused_at__isnull=False)
    return jobs.exclude(queue__in=paused.values("name"))


class Broker:
    """Job transitions on one database alias. Subclasses hold vendor SQL."""

    #: Casts for the VALUES list of ``record`` (PostgreSQL needs them).
    value_casts: tuple[str, ...] = ("",) * 9

    def __init__(self, using: str) -> None:
        self.using = using

    @property
    def connection(self) -> Any:
        return connections[self.using]

    def adapt(self, value: dt.datetime | None) -> Any:
        if value is None:
            return None
        return self.connection.ops.adapt_datetimefield_value(value)

    def adapter(self) -> Callable[[dt.datetime | None], Any]:
        """Return ``adapt`` for a loop: the connection is looked up once."""
        convert = self.connection.ops.adapt_datetimefield_value

        def adapt(value: dt.datetime | None) -> Any:
            return None if value is None else convert(value)

        return adapt

    # -- claim ----------------------------------------------------------------

    def claim_sql(
        self, queues: Sequence[str] | None, limit: int, exclude: Sequence[str] = ()
    ) -> str:
        queue_filter = _queue_filter(queues, exclude)
        # Literals, not parameters: SQLite uses the partial index only when
        # it can prove from the SQL text that the WHERE implies its condition.
        return (
            "UPDATE bgjobs_job SET status = %s, attempt = attempt + 1, "
            "started_at = %s, lease_expires_at = %s, worker = %s "
            "WHERE id IN (SELECT id FROM bgjobs_job "
            f"WHERE status IN {CLAIMABLE_SQL} AND run_at <= %s {queue_filter} "
            f"{NOT_PAUSED_SQL} "
            f"ORDER BY priority DESC, run_at, id LIMIT %s{self.skip_locked}) "
            f"RETURNING {CLAIM_COLUMNS}"
        )

    skip_locked = ""

    def claim_params(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        now: dt.datetime,
        lease: float,
        exclude: Sequence[str] = (),
    ) -> list[Any]:
        until = now + dt.timedelta(seconds=lease)
        return [
            JobStatus.RUNNING,
            self.adapt(now),
            self.adapt(until),
            worker,
            self.adapt(now),
            *(queues or ()),
            *exclude,
            limit,
        ]

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

        One statement, whatever ``limit`` is.
        """
        sql = self.claim_sql(queues, limit, exclude)
        params = self.claim_params(queues, limit, worker, now, lease, exclude)
        with self.connection.cursor() as cursor:
            rows = self.execute_claim(cursor, sql, params)
        return [self._claimed(row, worker, now) for row in rows]

    def claim_ids(
        self, ids: Sequence[int], worker: str, now: dt.datetime, lease: float
    ) -> list[ClaimedJob]:
        """Claim the jobs of ``ids`` that are ready or scheduled, whatever
        their ``run_at``, unless their queue is paused; in id order.

        The claim of ``worker.local``, which runs a given job (or its retry)
        at once. A job claimed by someone else first is left out: the UPDATE
        is the fence, the read that follows finds only this claim's rows.
        """
        if not ids:
            return []
        jobs = Job.objects.using(self.using)
        with transaction.atomic(using=self.using):
            _unpaused(jobs.filter(id__in=list(ids), status__in=CLAIMABLE)).update(
                status=JobStatus.RUNNING,
                attempt=F("attempt") + 1,
                started_at=now,
                lease_expires_at=now + dt.timedelta(seconds=lease),
                worker=worker,
            )
            rows = jobs.filter(
                id__in=list(ids),
                status=JobStatus.RUNNING,
                worker=worker,
                started_at=now,
            ).order_by("id")
            columns = [c.strip() for c in CLAIM_COLUMNS.split(",")]
            return [
                self._claimed(row, worker, now) for row in rows.values_list(*columns)
            ]

    def execute_claim(self, cursor: Any, sql: str, params: list[Any]) -> list[Any]:
        cursor.execute(sql, params)
        return list(cursor.fetchall())

    @staticmethod
    def _claimed(row: Sequence[Any], worker: str, now: dt.datetime) -> ClaimedJob:
        (id_, task, queue, priority, args, kwargs, attempt, uncharged) = row[:8]
        max_attempts, timeout, result_ttl = row[8:11]
        return ClaimedJob(
            id=id_,
            task=task,
            queue=queue,
            priority=priority,
            args=_json(args),
            kwargs=_json(kwargs),
            attempt=attempt,
            uncharged=uncharged,
            max_attempts=max_attempts,
            timeout=timeout,
            result_ttl=result_ttl,
            worker=worker,
            started_at=now,
        )

    # -- record ---------------------------------------------------------------

    def record_sql(self, count: int) -> str:
        casts = self.value_casts
        row = "(" + ", ".join(f"%s{cast}" for cast in casts) + ")"
        values = ", ".join([row] * count)
        finished = _in(FINISHED)
        return (
            "WITH v (vid, vattempt, vstatus, vresult, verror, vrun_at, "
            f"vfinished_at, vexpires_at, vuncharge) AS (VALUES {values}) "
            "UPDATE bgjobs_job SET status = v.vstatus, result = v.vresult, "
            "error = v.verror, run_at = COALESCE(v.vrun_at, bgjobs_job.run_at), "
            "finished_at = v.vfinished_at, expires_at = v.vexpires_at, "
            "uncharged = bgjobs_job.uncharged + v.vuncharge, lease_expires_at = NULL, "
            f"active_key = CASE WHEN v.vstatus IN {finished} THEN NULL "
            "ELSE bgjobs_job.active_key END "
            "FROM v WHERE bgjobs_job.id = v.vid AND bgjobs_job.attempt = v.vattempt "
            "AND bgjobs_job.status = %s RETURNING bgjobs_job.id"
        )

    def record_params(self, records: Sequence[Record]) -> list[Any]:
        adapt = self.adapter()
        params: list[Any] = []
        for r in records:
            result = None if r.result is None else json.dumps(r.result)
            finished = r.finished_at if r.status in FINISHED else None
            params += [
                r.job.id,
                r.job.attempt,
                r.status,
                result,
                r.error,
                adapt(r.run_at),
                adapt(finished),
                adapt(r.expires_at),
                r.uncharge,
            ]
        return [*params, *FINISHED, JobStatus.RUNNING]

    #: True when ``apply`` is one statement, atomic without a transaction.
    apply_is_one_statement = False

    def record(self, records: Sequence[Record]) -> list[Record]:
        """Apply a batch of outcomes; return those whose fence held.

        A record whose job is no longer running under its attempt number (the
        lease was lost and the job claimed again, or reaped) is left out.
        """
        if not records:
            return []
        unsettled = any(r.status not in FINAL_RECORD for r in records)
        if unsettled or not self.apply_is_one_statement:
            atomic: Any = transaction.atomic(using=self.using)
        else:
            # One statement commits alone: no BEGIN and COMMIT round trips.
            atomic = contextlib.nullcontext()
        with atomic:
            if unsettled:
                records = self.honour_cancellations(records)
            dying = any(r.status == JobStatus.FAILED for r in records)
            applied_ids = self.apply(records)
            applied = [r for r in records if r.job.id in applied_ids]
            if waiting := ready_or_freed(applied):
                self.announce(waiting)
            if dying:
                self._write_dead_letters(
                    [r for r in applied if r.status == JobStatus.FAILED]
                )
        for r in records:
            if r.job.id not in applied_ids:
                logger.warning(
                    "late outcome refused job_id=%s attempt=%s outcome=%s: the job "
                    "is no longer running under this attempt",
                    r.job.id,
                    r.job.attempt,
                    r.outcome,
                )
        return applied

    def announce(self, queues: Iterable[str]) -> None:
        """Tell idle workers that jobs of ``queues`` are ready, when the
        caller's transaction commits. Only PostgreSQL (NOTIFY) does."""

    def honour_cancellations(self, records: Sequence[Record]) -> list[Record]:
        """Turn the unsuccessful runs of jobs an operator cancelled into
        ``cancelled`` records. The caller holds the transaction.

        The rows are locked (``FOR UPDATE`` where the vendor has it, and
        SQLite's ``BEGIN IMMEDIATE`` holds the whole database), so a cancel
        cannot land between this read and the UPDATE that records the run.
        """
        ids = sorted({r.job.id for r in records if r.status not in FINAL_RECORD})
        lock = " FOR UPDATE" if self.connection.features.has_select_for_update else ""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, cancel_requested_at FROM bgjobs_job WHERE id IN {_in(ids)} "
                f"AND status = %s ORDER BY id{lock}",
                [*ids, JobStatus.RUNNING],
            )
            flagged = {id_ for id_, requested in cursor.fetchall() if requested}
        return cancelled_where(records, flagged)

    def apply(self, records: Sequence[Record]) -> set[int]:
        """Run the fenced UPDATE and write the attempts of the rows it changed;
        return their ids. The caller holds the transaction."""
        with self.connection.cursor() as cursor:
            cursor.execute(self.record_sql(len(records)), self.record_params(records))
            applied_ids = {row[0] for row in cursor.fetchall()}
        self._write_attempts([r for r in records if r.job.id in applied_ids])
        return applied_ids

    def _write_attempts(self, records: Sequence[Record]) -> None:
        # Raw SQL: the ORM's bulk_create cost more Python time per row than
        # the rest of recording together.
        if not records:
            return
        row = "(" + ", ".join(["%s"] * len(ATTEMPT_COLUMNS)) + ")"
        sql = (
            f"INSERT INTO bgjobs_attempt ({', '.join(ATTEMPT_COLUMNS)}) "
            f"VALUES {', '.join([row] * len(records))}"
        )
        adapt = self.adapter()
        params: list[Any] = []
        for r in records:
            params += [
                r.job.id,
                r.job.attempt,
                r.job.worker,
                adapt(r.job.started_at),
                adapt(r.finished_at),
                r.outcome,
                r.error_class,
                r.error_message[:10000],
                r.traceback[:50000],
            ]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)

    def _write_dead_letters(self, records: Sequence[Record]) -> None:
        if not records:
            return
        history: dict[int, list[dict[str, Any]]] = {r.job.id: [] for r in records}
        attempts = Attempt.objects.using(self.using).filter(job_id__in=list(history))
        for attempt in attempts.order_by("job_id", "number"):
            history[attempt.job_id].append(
                {
                    "number": attempt.number,
                    "worker": attempt.worker,
                    "started_at": attempt.started_at.isoformat(),
                    "finished_at": attempt.finished_at.isoformat(),
                    "outcome": attempt.outcome,
                    "error_class": attempt.error_class,
                    "error_message": attempt.error_message,
                }
            )
        keys = dict(
            Job.objects.using(self.using)
            .filter(id__in=list(history))
            .values_list("id", "key")
        )
        DeadLetter.objects.using(self.using).bulk_create(
            [
                DeadLetter(
                    job_id=r.job.id,
                    task=r.job.task,
                    queue=r.job.queue,
                    priority=r.job.priority,
                    args=r.job.args,
                    kwargs=r.job.kwargs,
                    key=keys.get(r.job.id),
                    reason=r.reason or r.error or r.outcome,
                    error_class=r.error_class,
                    attempts=r.job.charged,
                    history=history[r.job.id],
                    created_at=r.finished_at,
                )
                for r in records
            ]
        )

    # -- progress -------------------------------------------------------------

    def write_progress(
        self, notes: Sequence[tuple[int, int, Any]], now: dt.datetime
    ) -> int:
        """Write ``(job id, attempt, value)`` progress notes, each fenced
        like an outcome: a run that is no longer the job's running attempt
        writes nothing. Return how many rows changed (one UPDATE a note; the
        recorder sends at most one note per job per ``PROGRESS_INTERVAL``)."""
        jobs = Job.objects.using(self.using)
        changed = 0
        for job_id, attempt, value in notes:
            changed += jobs.filter(
                id=job_id, attempt=attempt, status=JobStatus.RUNNING
            ).update(progress=value, progress_at=now)
        return changed

    # -- leases ---------------------------------------------------------------

    def heartbeat(self, worker: str, now: dt.datetime, lease: float) -> Heartbeat:
        """Extend the lease of every job ``worker`` runs, and read which of
        them an operator cancelled; one statement.

        On PostgreSQL the rows are locked with SKIP LOCKED: a row the
        recorder holds is being finished and needs no renewal, and waiting
        for it could deadlock with the recorder, which locks rows in another
        order. A skipped row is renewed at the next beat.
        """
        until = now + dt.timedelta(seconds=lease)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE bgjobs_job SET lease_expires_at = %s WHERE id IN ("
                "SELECT id FROM bgjobs_job WHERE worker = %s AND status = %s"
                f"{self.skip_locked}) RETURNING id, cancel_requested_at",
                [self.adapt(until), worker, JobStatus.RUNNING],
            )
            rows = cursor.fetchall()
        return Heartbeat(
            renewed=len(rows), cancelled={id_ for id_, flag in rows if flag}
        )

    def expired(
        self, now: dt.datetime, limit: int = 500, worker: str | None = None
    ) -> list[ClaimedJob]:
        """Return running jobs whose lease ran out, for ``reap``; with
        ``worker``, every running job of that (dead) worker."""
        running = Job.objects.using(self.using).filter(status=JobStatus.RUNNING)
        if worker is None:
            running = running.filter(lease_expires_at__lt=now)
        else:
            running = running.filter(worker=worker)
        rows = (
            running.order_by("lease_expires_at")
            .values_list(
                "id", "task", "queue", "priority", "args", "kwargs", "attempt",
                "uncharged", "max_attempts", "timeout", "result_ttl", "worker",
                "started_at",
            )[:limit]
        )  # fmt: skip
        jobs = []
        for row in rows:
            job = self._claimed(row[:11], row[11], row[12] or now)
            jobs.append(job)
        return jobs

    # -- maintenance ----------------------------------------------------------

    def prune(self, now: dt.datetime, batch: int, cuts: Cuts | None = None) -> int:
        """Delete up to ``batch`` finished jobs past their retention (age,
        then count); see ``broker.pruning`` (``cuts``: the count scopes'
        cuts, remembered between calls)."""
        from .pruning import prune_counts, prune_expired

        deleted = prune_expired(self, now, batch)
        if deleted < batch:
            deleted += prune_counts(self, batch - deleted, cuts)
        return deleted

    def next_run_at(self, queues: Sequence[str] | None) -> dt.datetime | None:
        """Return the earliest ``run_at`` of a claimable job in ``queues``,
        leaving out paused queues (burst mode does not wait for them)."""
        return (
            _unpaused(_in_statuses(Job.objects.using(self.using), CLAIMABLE))
            .in_queues(list(queues or ()))
            .order_by("run_at")
            .values_list("run_at", flat=True)
            .first()
        )

    def head_task(self, queues: Sequence[str] | None, now: dt.datetime) -> str | None:
        """Return the task of the job of ``queues`` that a claim would take
        first (paused queues left out), or None; one probe of the claim's
        index, read-only."""
        return (
            _unpaused(_in_statuses(Job.objects.using(self.using), CLAIMABLE))
            .filter(run_at__lte=now)
            .in_queues(list(queues or ()))
            .order_by("-priority", "run_at", "id")
            .values_list("task", flat=True)
            .first()
        )

    def next_scheduled_at(self, queues: Sequence[str] | None) -> dt.datetime | None:
        """Return when the next delayed job of ``queues`` is due (one probe
        of ``bgjobs_job_scheduled``), or None; paused queues are left out,
        or their overdue jobs would wake an idle worker again and again."""
        return (
            _unpaused(Job.objects.using(self.using).filter(status=JobStatus.SCHEDULED))
            .in_queues(list(queues or ()))
            .order_by("run_at")
            .values_list("run_at", flat=True)
            .first()
        )

    def has_running(self, queues: Sequence[str] | None) -> bool:
        """Return True if a job of ``queues`` runs on any worker; jobs of
        paused queues do not count (a retry of theirs would not be claimed)."""
        return (
            _unpaused(Job.objects.using(self.using).filter(status=JobStatus.RUNNING))
            .in_queues(list(queues or ()))
            .exists()
        )

    # -- workers and leases -----------------------------------------------

    def register_worker(
        self,
        worker: str,
        host: str,
        pid: int,
        queues: Sequence[str] | None,
        concurrency: int,
        now: dt.datetime,
    ) -> None:
        """Write the registry row of ``worker``, running from ``now``."""
        Worker.objects.using(self.using).update_or_create(
            id=worker,
            defaults={
                "host": host,
                "pid": pid,
                "queues": list(queues or ()),
                "concurrency": concurrency,
                "started_at": now,
                "last_heartbeat_at": now,
                "stopped_at": None,
                "lost_at": None,
            },
        )

    def touch_worker(self, worker: str, now: dt.datetime) -> int:
        """Record a heartbeat of a running ``worker``; one UPDATE.

        Return 0 when it has no running row (never registered, or stopped).
        A worker found lost that beats again is running again.
        """
        return (
            Worker.objects.using(self.using)
            .filter(id=worker, stopped_at__isnull=True)
            .update(last_heartbeat_at=now, lost_at=None)
        )

    def deregister_worker(self, worker: str, now: dt.datetime) -> int:
        """Mark ``worker`` stopped; one UPDATE."""
        return (
            Worker.objects.using(self.using)
            .filter(id=worker, stopped_at__isnull=True)
            .update(stopped_at=now, last_heartbeat_at=now)
        )

    def mark_worker_lost(self, worker: str, now: dt.datetime) -> int:
        """Mark ``worker`` lost now (its supervisor saw it die); one UPDATE."""
        return (
            Worker.objects.using(self.using)
            .filter(id=worker, stopped_at__isnull=True, lost_at__isnull=True)
            .update(lost_at=now)
        )

    def mark_lost_workers(self, now: dt.datetime, lease: float) -> int:
        """Mark running workers silent for longer than ``lease`` as lost."""
        silent_since = now - dt.timedelta(seconds=lease)
        return (
            Worker.objects.using(self.using)
            .filter(
                stopped_at__isnull=True,
                lost_at__isnull=True,
                last_heartbeat_at__lt=silent_since,
            )
            .update(lost_at=now)
        )

    def acquire_lease(
        self, name: str, holder: str, now: dt.datetime, seconds: float
    ) -> bool:
        """Take or renew lease ``name`` for ``seconds``; return True if held.

        One conditional UPDATE takes a lease that ``holder`` holds or that
        expired; a missing row is inserted, and of two holders inserting at
        once the unique primary key lets one win.
        """
        until = now + dt.timedelta(seconds=seconds)
        leases = Lease.objects.using(self.using)
        taken = (
            leases.filter(name=name)
            .filter(Q(holder=holder) | Q(expires_at__lt=now))
            .update(holder=holder, expires_at=until)
        )
        if taken:
            return True
        try:
            _, created = leases.get_or_create(
                name=name, defaults={"holder": holder, "expires_at": until}
            )
        except IntegrityError:
            return False
        return created

    def release_lease(self, name: str, holder: str, now: dt.datetime) -> int:
        """Let lease ``name`` go now if ``holder`` holds it."""
        return (
            Lease.objects.using(self.using)
            .filter(name=name, holder=holder)
            .update(expires_at=now - dt.timedelta(microseconds=1))
        )
