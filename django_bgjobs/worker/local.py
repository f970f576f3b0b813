"""Run jobs in the calling process, one at a time: claim, execute, record.

The engine of inline mode and of ``django_bgjobs.testing.drain``: the
broker's claim and fenced record, the executor, the recorder's write and the
outcome signals of a worker process, in the caller's thread, on its
connection and inside its transaction. A retry runs at once: a test does not
wait out a backoff.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from contextvars import ContextVar

from django.db import connections, transaction
from django.utils import timezone

from .. import signals
from ..broker import ClaimedJob, Record, get_broker
from ..conf import get_settings
from ..exceptions import TooManyJobs
from ..models import Job, QueueState
from ..status import CLAIMABLE, AttemptOutcome, JobStatus
from .executor import Executor, internal_error, settle
from .process import make_worker_id
from .recorder import Recorder, log_finish, send_outcome_signals

logger = logging.getLogger("django_bgjobs.worker")

#: The ids that jobs running inline enqueued, to run once the current one ends.
_pending: ContextVar[list[int] | None] = ContextVar("bgjobs_pending", default=None)


@dataclasses.dataclass
class Run:
    """One job run here until it finished, snoozed, or could not be claimed."""

    job_id: int
    task: str
    #: The job's status after its last run here.
    status: str
    #: Runs here: the first one and the retries.
    attempts: int
    #: The error of the last run, if it failed.
    error: BaseException | None = None
    snoozed: bool = False


class LocalRunner:
    """Claims and runs jobs in this thread, through the worker's own parts."""

    def __init__(self, using: str | None = None) -> None:
        self.broker = get_broker(using)
        self.executor = Executor()
        # The caller's connection and transaction stay open: a test's
        # transaction must survive the job.
        self.executor.release_connections = False
        self.recorder = Recorder(self.broker.using, 0.0)
        self.worker_id = make_worker_id(suffix="local")
        self.lease = get_settings().LEASE_SECONDS

    def run_to_end(self, job_id: int, claimed: ClaimedJob | None = None) -> Run | None:
        """Run job ``job_id`` (``claimed``: already claimed) and its retries
        at once, until it finishes or snoozes; None if it is not claimable."""
        run: Run | None = None
        while True:
            if claimed is None:
                jobs = self.broker.claim_ids(
                    [job_id], self.worker_id, timezone.now(), self.lease
                )
                if not jobs:
                    return run
                claimed = jobs[0]
            record, error = self._run(claimed)
            run = Run(
                job_id=job_id,
                task=claimed.task,
                status=self._status(job_id),
                attempts=(run.attempts if run else 0) + 1,
                error=error,
                snoozed=record is not None and record.outcome == AttemptOutcome.SNOOZED,
            )
            if run.snoozed or run.status not in CLAIMABLE:
                return run
            claimed = None

    def drain(
        self,
        queues: Sequence[str] | None,
        include_scheduled: bool,
        max_jobs: int,
        reraise: bool,
    ) -> list[Run]:
        """Run every claimable job of ``queues`` (None: all) to its end,
        jobs they enqueue included, until none is left.

        Raise ``TooManyJobs`` when ``max_jobs`` jobs ran and more are left.
        """
        runs: list[Run] = []
        snoozed: set[int] = set()
        token = _pending.set([])  # jobs enqueued inline are claimed here
        try:
            while True:
                if len(runs) >= max_jobs:
                    if self.next_id(queues, include_scheduled, snoozed) is None:
                        return runs
                    raise _too_many(runs, max_jobs)
                run = self._drain_one(queues, include_scheduled, snoozed)
                if run is None:
                    return runs
                runs.append(run)
                if run.snoozed:
                    snoozed.add(run.job_id)
                if reraise and run.error is not None and run.status == JobStatus.FAILED:
                    raise run.error
        finally:
            _pending.reset(token)

    def _drain_one(
        self, queues: Sequence[str] | None, include_scheduled: bool, skip: set[int]
    ) -> Run | None:
        while True:
            if not skip:
                # The claim of a worker process: priority, run_at, then id.
                now = timezone.now()
                claimed = self.broker.claim(queues, 1, self.worker_id, now, self.lease)
                if claimed:
                    return self.run_to_end(claimed[0].id, claimed[0])
                if not include_scheduled:
                    return None
            # A job that snoozed in this drain is not run again by it.
            job_id = self.next_id(queues, include_scheduled, skip)
            if job_id is None:
                return None
            run = self.run_to_end(job_id)
            if run is not None:
                return run

    def next_id(
        self, queues: Sequence[str] | None, include_scheduled: bool, skip: set[int]
    ) -> int | None:
        """Return the id of the next job a drain would run, or None: a due
        job in claim order, else (``include_scheduled``) the earliest."""
        paused = QueueState.objects.using(self.broker.using).filter(
            paused_at__isnull=False
        )
        jobs = (
            Job.objects.using(self.broker.using)
            .filter(status__in=CLAIMABLE)
            .in_queues(list(queues or ()))
            .exclude(queue__in=paused.values("name"))
            .exclude(id__in=skip)
        )
        due = jobs.filter(run_at__lte=timezone.now()).order_by(
            "-priority", "run_at", "id"
        )
        found = due.values_list("id", flat=True).first()
        if found is None and include_scheduled:
            found = jobs.order_by("run_at", "id").values_list("id", flat=True).first()
        return found

    def _run(self, job: ClaimedJob) -> tuple[Record | None, BaseException | None]:
        """Run one claimed job and record its outcome as a worker process
        does; return the record and the error of the run."""
        if signals.job_started.has_listeners():
            signals.job_started.send(
                job.task, job_id=job.id, queue=job.queue, attempt=job.attempt
            )
        outcome = self.executor.run(job, self.broker)
        if outcome.committed:
            if outcome.record is not None:
                log_finish(outcome.record)
                send_outcome_signals(outcome.record)
            return outcome.record, None
        try:
            record = settle(job, outcome)
        except Exception as error:
            logger.exception("could not settle job id=%s", job.id)
            record = internal_error(job, error)
        self.recorder._write(self.broker, [record])
        return record, outcome.error

    def _status(self, job_id: int) -> str:
        return str(
            Job.objects.using(self.broker.using)
            .filter(pk=job_id)
            .values_list("status", flat=True)
            .get()
        )


def _too_many(runs: list[Run], max_jobs: int) -> TooManyJobs:
    tasks: dict[str, int] = {}
    for run in runs:
        tasks[run.task] = tasks.get(run.task, 0) + 1
    top = sorted(tasks.items(), key=lambda item: -item[1])[:5]
    ran = ", ".join(f"{task} x{count}" for task, count in top)
    return TooManyJobs(
        f"drain() ran max_jobs={max_jobs} jobs and jobs are still left to run "
        f"(a job that enqueues another forever?). Ran: {ran}. Pass a larger "
        "max_jobs if the work is finite."
    )


def commits_later(using: str) -> bool:
    """Return True inside a transaction that will commit: an ``atomic()``
    block, but not within a test case's transaction.

    ``TestCase`` (and pytest-django's ``db``) wrap each test in a transaction
    that never commits, so ``on_commit`` would never run a job there.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        return False
    blocks = getattr(connection, "atomic_blocks", [])
    return not any(getattr(block, "_from_testcase", False) for block in blocks)


def run_enqueued(jobs: list[tuple[str, str, int]], using: str, reraise: bool) -> None:
    """Run the just-enqueued ``(task, queue, id)`` jobs in this process, when
    the enqueuing transaction commits; at once outside a transaction, and
    within a test case's transaction, which never commits.

    A job enqueued by a job running here runs after that job ends. With
    ``reraise``, raise the error of a job that ends failed.
    """
    ids = [job_id for _, _, job_id in jobs]

    def run() -> None:
        _run_ids(ids, using, reraise)

    if commits_later(using):
        transaction.on_commit(run, using=using)
    else:
        run()


def _run_ids(ids: list[int], using: str, reraise: bool) -> None:
    # A delayed job waits for its time, as on a worker (drain() runs it).
    ready = list(
        Job.objects.using(using)
        .filter(id__in=ids, status=JobStatus.READY, run_at__lte=timezone.now())
        .order_by("id")
        .values_list("id", flat=True)
    )
    pending = _pending.get()
    if pending is not None:
        pending.extend(ready)
        return
    token = _pending.set(ready)
    try:
        runner = LocalRunner(using)
        while ready:
            run = runner.run_to_end(ready.pop(0))
            if (
                reraise
                and run
                and run.error is not None
                and run.status == JobStatus.FAILED
            ):
                raise run.error
    finally:
        _pending.reset(token)
