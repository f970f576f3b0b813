"""One worker process: wait -> claim a batch -> threads or loop -> record.

The claim loop claims no more jobs than it has room for: free threads for
plain jobs, free event-loop slots for coroutine jobs (see ``capacity``).
Outcomes go to a recorder thread that writes them in batches (one fenced
UPDATE per batch), at most ``FLUSH_INTERVAL`` after the first of them, and
writes the jobs' progress. A heartbeat thread renews the leases of this
process's jobs in one statement per beat and runs maintenance.
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

from django.db import DatabaseError, connections
from django.utils import timezone

from .. import registry, signals
from ..broker import ClaimedJob, Record, get_broker
from ..conf import get_settings
from ..limits import Limiter
from ..wakeup import get_listener
from .aio import AsyncRunner
from .executor import (
    Executor,
    Outcome,
    internal_error,
    interrupted,
    settle,
)
from .maintenance import Maintenance
from .outage import Outage
from .recorder import RETRY_MAX, Recorder, log_finish, send_outcome_signals
from .watchdog import EXIT_TIMED_OUT, Watchdog

logger = logging.getLogger("django_bgjobs.worker")

#: While every thread is busy and the last claim found no coroutine job, how
#: often the claim loop looks whether the next job is one (``_probe``).
ASYNC_PROBE_INTERVAL = 1.0


def make_worker_id(pid: int | None = None, suffix: str | None = None) -> str:
    """Return ``host:pid:suffix``, unique across machines and restarts."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{suffix or uuid.uuid4().hex[:6]}"


@dataclasses.dataclass
class ProcessOptions:
    queues: Sequence[str] | None = None
    concurrency: int = 8
    #: Coroutine jobs run at once on the process's event loop.
    async_concurrency: int = 100
    burst: bool = False
    grace: float = 30.0
    max_jobs: int | None = None
    max_memory_mb: float | None = None
    #: Pipe end the watchdog reports its nearest deadline to the supervisor on.
    report_fd: int | None = None


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
            progress_interval=self.conf.PROGRESS_INTERVAL,
        )
        self.executor = Executor(progress=self.recorder.progress)
        #: The event loop of coroutine jobs, if any task is a coroutine.
        self.aio: AsyncRunner | None = None
        if registry.has_coroutines():
            self.aio = AsyncRunner(
                self.executor, self._finish, options.async_concurrency
            )
        #: Running coroutine jobs (of ``running``), and how many the next
        #: claim may take for the event loop (see ``capacity``).
        self.async_held = 0
        self.async_allowance = 0
        #: time.monotonic() after which ``_probe`` may look again.
        self.next_probe = 0.0
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
        if self.aio is not None:
            self.aio.start()
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
            free = self.capacity()
            if free == 0 and self._probe():
                free = 1
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
                self._dispatch(claimed, pool)
                if len(claimed) == free:
                    continue
            if self.options.burst and not claimed and self._burst_done():
                return
            self.wake.wait(self._idle_wait(claimed))
            self.wake.clear()

    def capacity(self) -> int:
        """Return how many jobs the next claim may take.

        A claim cannot choose between plain and coroutine jobs, so it takes
        the free threads plus up to ``async_allowance`` free event-loop
        slots, and each job goes where its task runs. A job claimed beyond
        its side's room waits in this process (a thread's inbox, or the
        loop's semaphore) and lowers the next claim by one, so the jobs held
        never exceed threads + slots. The allowance is twice the coroutine
        jobs the last claim found, and 0 when it found none: a process whose
        work is all plain jobs claims no more than it has free threads
        (``_probe`` looks for coroutine jobs while they are all busy).
        """
        sync_free = self.options.concurrency - (len(self.running) - self.async_held)
        if self.aio is None:
            return sync_free
        async_free = self.options.async_concurrency - self.async_held
        return sync_free + min(async_free, self.async_allowance)

    def _probe(self) -> bool:
        """Return True if the job a claim would take next is a coroutine job
        that the loop has room for, while every thread is busy.

        At most once per ``ASYNC_PROBE_INTERVAL``: a coroutine job waits no
        longer than that for busy threads, and a plain job is never claimed
        into the loop's room (unless another worker takes the coroutine job
        between the look and the claim).
        """
        if self.aio is None or self.async_allowance:
            return False
        if self.async_held >= self.options.async_concurrency:
            return False
        now = time.monotonic()
        if now < self.next_probe:
            return False
        self.next_probe = now + ASYNC_PROBE_INTERVAL
        try:
            task = self.broker.head_task(self.options.queues, timezone.now())
        except DatabaseError:
            return False  # the claim meets the outage
        return task is not None and registry.is_coroutine(task)

    def _dispatch(self, claimed: list[ClaimedJob], pool: JobThreads) -> None:
        """Hand each claimed job to a thread, or to the event loop."""
        if self.aio is None:
            for job in claimed:
                pool.submit(job)
            return
        coroutines = 0
        # A claim's RETURNING order is the vendor's: keep its priorities.
        claimed = sorted(claimed, key=lambda job: -job.priority)
        for job in claimed:
            if registry.is_coroutine(job.task):
                coroutines += 1
                self._started(job)  # here: receivers may be synchronous
                self.aio.submit(job)
            else:
                pool.submit(job)
        if claimed:
            self.async_allowance = min(self.options.async_concurrency, 2 * coroutines)

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
                if self.aio is not None and registry.is_coroutine(job.task):
                    self.async_held += 1
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
        if claimed or self.capacity() <= 0:
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
                if self.aio is not None and registry.is_coroutine(job.task):
                    self.aio.cancel(job.id)

    # -- running one job ------------------------------------------------------

    def _run_job(self, job: ClaimedJob) -> None:
        self._started(job)
        outcome = self.executor.run(job, self.broker)
        if outcome.committed:
            self._committed(job, outcome.record)
            return
        self._finish(job, outcome)

    def _started(self, job: ClaimedJob) -> None:
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

    def _finish(self, job: ClaimedJob, outcome: Outcome) -> None:
        """Settle ``outcome`` and hand its record to the recorder (on the
        job's thread, or on the event loop's)."""
        try:
            record = settle(job, outcome)
        except Exception as error:
            # A bug here must not strand the job as running: dead-letter it.
            logger.exception("could not settle job id=%s", job.id)
            record = internal_error(job, error)
        # A job released at shutdown is no longer ours to record.
        if self._release(job) is None:
            return
        self.recorder.put(record)
        self.wake.set()

    def _committed(self, job: ClaimedJob, record: Record | None) -> None:
        # An atomic job recorded its success itself, or its fence refused it
        # (the broker logged that); either way nothing is left to record.
        self._release(job)
        self.recorder.progress.final({job.id})
        if record is not None:
            if logger.isEnabledFor(logging.INFO):
                log_finish(record)
            send_outcome_signals(record)
        self.wake.set()

    def _release(self, job: ClaimedJob) -> ClaimedJob | None:
        """Forget ``job`` as running; return it, or None if it was not."""
        with self.lock:
            held = self.running.pop(job.id, None)
            if held is not None and self.aio is not None:
                self.async_held -= registry.is_coroutine(job.task)
        return held

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
            self.async_held = 0
        now = timezone.now()
        for job in left:
            logger.warning(
                "job released id=%s task=%s: still running after the %.1f s grace",
                job.id,
                job.task,
                self.options.grace,
            )
            self.recorder.put(interrupted(job, now))
        if self.aio is not None:
            # The released coroutine jobs are cancelled; their outcomes are
            # dropped, as those of released thread jobs are.
            self.aio.stop(timeout=0.0 if timed_out else 5.0)
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
