"""One worker process: wait -> claim a batch -> thread pool -> record.

The claim loop claims no more jobs than it has free threads. Outcomes go to a
recorder thread that writes them in batches (one fenced UPDATE per batch), at
most ``FLUSH_INTERVAL`` after the first of them. A heartbeat thread renews the
leases of this process's jobs in one statement per beat and runs maintenance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from .. import signals
from ..broker import Broker, ClaimedJob, Record, get_broker
from ..broker.base import ready_or_freed
from ..conf import get_settings
from ..limits import Limiter
from ..status import AttemptOutcome, JobStatus
from ..wakeup import announce, get_listener
from .executor import Executor, internal_error, interrupted, refused, settle
from .maintenance import Maintenance
from .outage import Outage
from .watchdog import EXIT_TIMED_OUT, Watchdog

logger = logging.getLogger("django_bgjobs.worker")

#: The longest wait between two tries while the database is away: also the
#: longest a worker takes to notice it is back.
RETRY_MAX = 2.0


def make_worker_id(pid: int | None = None, suffix: str | None = None) -> str:
    """Return ``host:pid:suffix``, unique across machines and restarts."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{suffix or uuid.uuid4().hex[:6]}"


@dataclasses.dataclass
class ProcessOptions:
    queues: Sequence[str] | None = None
    concurrency: int = 8
    burst: bool = False
    grace: float = 30.0
    max_jobs: int | None = None
    max_memory_mb: float | None = None
    #: Pipe end the watchdog reports its nearest deadline to the supervisor on.
    report_fd: int | None = None


class Recorder:
    """Writes outcomes in batches; keeps a batch and retries it while the
    database is away, so a computed outcome is not dropped."""

    def __init__(
        self,
        broker_alias: str | None,
        flush_interval: float,
        on_flush: Callable[[], None] | None = None,
        outage: Outage | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.outage = outage or Outage("?")
        self.on_ready = on_ready
        # SimpleQueue: a put costs a job thread a fraction of Queue's.
        self.inbox: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        self.flush_interval = flush_interval
        self.alias = broker_alias
        self.on_flush = on_flush
        self.thread = threading.Thread(target=self._loop, name="bgjobs-recorder")
        self.thread.daemon = True

    def put(self, record: Record) -> None:
        self.inbox.put(record)

    def stop(self) -> None:
        self.inbox.put(None)
        self.thread.join()

    def _gather(self, first: Record) -> tuple[list[Record], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < 500:
            timeout = deadline - time.monotonic()
            try:
                item = (
                    self.inbox.get(timeout=max(timeout, 0))
                    if timeout > 0
                    else (self.inbox.get_nowait())
                )
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _loop(self) -> None:
        broker = get_broker(self.alias)
        stop = False
        while not stop:
            first = self.inbox.get()
            if first is None:
                break
            batch, stop = self._gather(first)
            try:
                self._write(broker, batch)
            except Exception:
                # The jobs stay running under their lease and are reaped.
                logger.exception("could not record %d outcomes", len(batch))
        connections.close_all()

    def _write(self, broker: Broker, batch: list[Record]) -> None:
        applied = self._record(broker, batch)
        log = logger.isEnabledFor(logging.INFO)
        for record in applied:
            if log:
                _log_finish(record)
            _send_outcome_signals(record)
        if self.on_flush is not None:
            self.on_flush()
        if waiting := ready_or_freed(applied):
            # A retry or a release, or a slot freed under a concurrency
            # limit: claim now, or sleep until the job is due. Other workers
            # hear of it through Redis, if configured (PostgreSQL's NOTIFY
            # went with the record).
            if self.on_ready is not None:
                self.on_ready()
            announce(waiting)

    def _record(self, broker: Broker, batch: list[Record]) -> list[Record]:
        """Record ``batch``, waiting out outages; return the applied records.

        An outage (the database is away) is retried until it ends, so no
        outcome computed meanwhile is lost. Any other database error is a value
        the database refuses: the batch is split so that one bad record cannot
        block the others, and that record becomes a dead letter.
        """
        delay = 0.1
        while True:
            try:
                applied = broker.record(batch)
            except (OperationalError, InterfaceError) as error:
                self.outage.failed(f"recording {len(batch)} outcomes", error)
                connections[broker.using].close()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except (DatabaseError, UnicodeError) as error:
                if len(batch) > 1:
                    return [a for r in batch for a in self._record(broker, [r])]
                return self._record_refused(broker, batch[0], error)
            self.outage.succeeded()
            return applied

    def _record_refused(
        self, broker: Broker, record: Record, error: Exception
    ) -> list[Record]:
        logger.error(
            "database refused the outcome of job id=%s attempt=%s: %s",
            record.job.id,
            record.job.attempt,
            error,
        )
        try:
            return broker.record([refused(record, error)])
        except Exception:
            # The job stays running under its lease, and the reaper retries it.
            logger.exception("could not record job id=%s at all", record.job.id)
            return []


def _log_finish(record: Record) -> None:
    job = record.job
    duration = (record.finished_at - job.started_at).total_seconds()
    logger.info(
        "job finished id=%s task=%s queue=%s attempt=%s outcome=%s status=%s "
        "duration=%.3fs",
        job.id,
        job.task,
        job.queue,
        job.attempt,
        record.outcome,
        record.status,
        duration,
    )


def _send_outcome_signals(record: Record) -> None:
    if record.status == JobStatus.CANCELLED or record.outcome == AttemptOutcome.SNOOZED:
        return
    job = record.job
    common = {"job_id": job.id, "queue": job.queue, "attempt": job.attempt}
    if record.status == JobStatus.SUCCEEDED:
        if signals.job_succeeded.has_listeners():
            duration = (record.finished_at - job.started_at).total_seconds()
            signals.job_succeeded.send(
                job.task, duration=duration, result=record.result, **common
            )
        return
    if record.error_class and signals.job_failed.has_listeners():
        signals.job_failed.send(job.task, error=record.error, **common)
    if record.status in (JobStatus.SCHEDULED, JobStatus.READY):
        if signals.job_retried.has_listeners():
            signals.job_retried.send(
                job.task, error=record.error, run_at=record.run_at, **common
            )
    elif record.status == JobStatus.FAILED and signals.job_dead.has_listeners():
        signals.job_dead.send(job.task, reason=record.reason, **common)


class JobThreads:
    """``size`` threads that run the jobs handed to them.

    Lighter per job than ``ThreadPoolExecutor``, which builds a ``Future``
    (with its own lock and condition) for each call; nothing reads them here.
    """

    def __init__(self, size: int, target: Callable[[ClaimedJob], None]) -> None:
        self.inbox: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self.target = target
        self.threads = [
            threading.Thread(target=self._loop, name=f"bgjobs-job_{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: ClaimedJob) -> None:
        self.inbox.put(job)

    def shutdown(self, wait: bool) -> None:
        """Drop jobs no thread has started; stop the threads, joining them
        if ``wait``."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.inbox.get_nowait()
        for _ in self.threads:
            self.inbox.put(None)
        if wait:
            for thread in self.threads:
                thread.join()

    def _loop(self) -> None:
        while (job := self.inbox.get()) is not None:
            try:
                self.target(job)
            except BaseException:
                logger.exception("job thread failed id=%s task=%s", job.id, job.task)


class WorkerProcess:
    """Claims and runs jobs until stopped (or, in burst mode, until idle)."""

    def __init__(self, options: ProcessOptions, worker_id: str | None = None) -> None:
        self.options = options
        self.conf = get_settings()
        self.worker_id = worker_id or make_worker_id()
        self.broker = get_broker()
        self.executor = Executor()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.running: dict[int, ClaimedJob] = {}
        self.limiter = Limiter(self.broker)
        #: When a limit that held jobs back next lets one start.
        self.limit_retry_at: dt.datetime | None = None
        self.outage = Outage(self.worker_id)
        # In burst mode a flush may be what the exit check waits for.
        self.recorder = Recorder(
            self.broker.using,
            self.conf.FLUSH_INTERVAL,
            on_flush=self.wake.set if options.burst else None,
            outage=self.outage,
            on_ready=self.wake.set,
        )
        self.maintenance = Maintenance(
            self.worker_id,
            self.broker.using,
            options.queues,
            options.concurrency,
            on_cancelled=self.cancel_requested,
            outage=self.outage,
        )
        self.listener = get_listener(self.broker.using, options.queues, self.wake.set)
        self.exit_code = 0
        self.watchdog = Watchdog(
            self, options.max_jobs, options.max_memory_mb, options.report_fd
        )

    # -- main loop ------------------------------------------------------------

    def run(self) -> int:
        """Run until ``stop()``; return the process exit code."""
        logger.info(
            "worker started id=%s queues=%s concurrency=%s",
            self.worker_id,
            ",".join(self.options.queues or ["*"]),
            self.options.concurrency,
        )
        self.maintenance.register()
        self.recorder.thread.start()
        self.maintenance.start()
        self.watchdog.start()
        self.listener.start()
        pool = JobThreads(self.options.concurrency, self._run_job)
        try:
            self._loop(pool)
        finally:
            self._shutdown(pool)
        return self.exit_code

    def stop(self) -> None:
        """Ask the loop to stop claiming and shut down."""
        self.stopping.set()
        self.wake.set()

    def _loop(self, pool: JobThreads) -> None:
        failures = 0
        while not self.stopping.is_set():
            free = self.options.concurrency - len(self.running)
            claimed: list[ClaimedJob] = []
            if free > 0:
                try:
                    claimed = self._claim(min(free, self.conf.CLAIM_BATCH_MAX))
                    failures = 0
                    self.outage.succeeded()
                except DatabaseError as error:
                    failures += 1
                    self._database_down(error, failures)
                    continue
                for job in claimed:
                    pool.submit(job)
                if len(claimed) == free:
                    continue
            if self.options.burst and not claimed and self._burst_done():
                return
            self.wake.wait(self._idle_wait(claimed))
            self.wake.clear()

    def _claim(self, limit: int) -> list[ClaimedJob]:
        limit = self.watchdog.claim_limit(limit)
        if limit <= 0:
            return []
        queues, now, lease = (
            self.options.queues,
            timezone.now(),
            self.conf.LEASE_SECONDS,
        )
        # Limited queues first: each takes no more than its limits allow.
        limited = self.limiter.limited(queues)
        got = self.limiter.claim_all(limited, limit, self.worker_id, None, lease)
        jobs, self.limit_retry_at = got.jobs, got.retry_at
        open_queues = (
            None if queues is None else [q for q in queues if q not in limited]
        )
        if len(jobs) < limit and open_queues != []:
            jobs += self.broker.claim(
                open_queues,
                limit - len(jobs),
                self.worker_id,
                now,
                lease,
                exclude=limited if queues is None else (),
            )
        with self.lock:
            for job in jobs:
                self.running[job.id] = job
        self.watchdog.claimed(len(jobs))
        return jobs

    def _idle_wait(self, claimed: list[ClaimedJob]) -> float:
        """Return how long the claim loop may wait for a wake-up.

        Busy, it waits for a job thread to finish. Idle, it polls every
        ``POLL_INTERVAL``, or every ``WAKE_POLL_INTERVAL`` while a wake-up
        listener is connected, but never past the next delayed job's run time
        or the moment a limit lets a held-back job start.
        """
        return min(self._wait_for_work(claimed), self._wait_for_limits())

    def _wait_for_limits(self) -> float:
        if self.limit_retry_at is None:
            return float("inf")
        until = (self.limit_retry_at - timezone.now()).total_seconds()
        return max(until, 0.0) + 0.001

    def _wait_for_work(self, claimed: list[ClaimedJob]) -> float:
        if claimed or len(self.running) >= self.options.concurrency:
            return self.conf.POLL_INTERVAL
        jitter = 0.75 + random.random() / 2  # noqa: S311
        if not self.listener.connected:
            return self.conf.POLL_INTERVAL * jitter
        wait = self.conf.WAKE_POLL_INTERVAL * jitter
        try:
            due = self.broker.next_scheduled_at(self.options.queues)
        except DatabaseError:
            return self.conf.POLL_INTERVAL  # the next claim meets the outage
        if due is not None:
            until = (due - timezone.now()).total_seconds()
            wait = min(wait, max(until, 0.0) + 0.001)
        return wait

    def _database_down(self, error: Exception, failures: int) -> None:
        delay = min(0.1 * 2**failures, RETRY_MAX)
        self.outage.failed("claiming jobs", error)
        connections[self.broker.using].close()
        self.stopping.wait(delay)

    def _burst_done(self) -> bool:
        # A job running anywhere (or whose outcome is not flushed yet) may be
        # retried soon, so burst mode waits for it.
        if self.running or self.broker.has_running(self.options.queues):
            return False
        next_run = self.broker.next_run_at(self.options.queues)
        if next_run is None:
            return True
        wait = (next_run - timezone.now()).total_seconds()
        return wait > self.conf.BURST_HORIZON

    def cancel_requested(self, ids: set[int]) -> None:
        """Flag the running jobs of ``ids`` as cancelled to their job code."""
        with self.lock:
            jobs = [self.running[id_] for id_ in ids if id_ in self.running]
        for job in jobs:
            if not job.cancel.is_set():
                logger.info("job cancel requested id=%s task=%s", job.id, job.task)
                job.cancel.set()

    # -- running one job ------------------------------------------------------

    def _run_job(self, job: ClaimedJob) -> None:
        # DEBUG: at INFO a job costs one line, its outcome.
        logger.debug(
            "job started id=%s task=%s queue=%s attempt=%s",
            job.id,
            job.task,
            job.queue,
            job.attempt,
        )
        if signals.job_started.has_listeners():
            signals.job_started.send(
                job.task, job_id=job.id, queue=job.queue, attempt=job.attempt
            )
        outcome = self.executor.run(job, self.broker)
        if outcome.committed:
            self._committed(job, outcome.record)
            return
        try:
            record = settle(job, outcome)
        except Exception as error:
            # A bug here must not strand the job as running: dead-letter it.
            logger.exception("could not settle job id=%s", job.id)
            record = internal_error(job, error)
        with self.lock:
            # A job released at shutdown is no longer ours to record.
            if self.running.pop(job.id, None) is None:
                return
        self.recorder.put(record)
        self.wake.set()

    def _committed(self, job: ClaimedJob, record: Record | None) -> None:
        # An atomic job recorded its success itself, or its fence refused it
        # (the broker logged that); either way nothing is left to record.
        with self.lock:
            self.running.pop(job.id, None)
        if record is not None:
            if logger.isEnabledFor(logging.INFO):
                _log_finish(record)
            _send_outcome_signals(record)
        self.wake.set()

    # -- shutdown -------------------------------------------------------------

    def _shutdown(self, pool: JobThreads) -> None:
        # After a timeout the process goes now: its jobs were already handed
        # back, and a thread stuck in an overdue job cannot be joined.
        timed_out = self.exit_code == EXIT_TIMED_OUT
        deadline = time.monotonic() + (0.0 if timed_out else self.options.grace)
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            left = list(self.running.values())
            self.running.clear()
        now = timezone.now()
        for job in left:
            logger.warning(
                "job released id=%s task=%s: still running after the %.1f s grace",
                job.id,
                job.task,
                self.options.grace,
            )
            self.recorder.put(interrupted(job, now))
        self.listener.stop()
        self.maintenance.stop()
        self.recorder.stop()
        # After the outcomes are written: a stopped worker leaves no job.
        self.maintenance.deregister()
        pool.shutdown(wait=not left and not timed_out)
        connections.close_all()
        logger.info("worker stopped id=%s released=%d", self.worker_id, len(left))


def run_process(
    options: ProcessOptions, on_ready: Callable[[WorkerProcess], None]
) -> int:
    """Build a ``WorkerProcess``, let the caller hook its signals, run it."""
    process = WorkerProcess(options)
    on_ready(process)
    return process.run()
