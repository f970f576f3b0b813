"""Hard timeouts and recycling of one worker process, on a thread of its own.

Every ``interval`` (0.2 s) the watchdog looks at the process's running jobs.
A job past its ``timeout`` cannot be stopped (Python cannot kill a thread;
a coroutine job is cancelled on the event loop, and comes here only if it
still runs ``ASYNC_TIMEOUT_MARGIN`` later),
so the process goes: the overdue job is recorded as timed out (charged, and
retried or dead-lettered by its attempts), every other running job goes back
to ready uncharged, the recorder flushes, and the process exits with
``EXIT_TIMED_OUT``. The supervisor starts a fresh process at once.

``max_jobs`` and ``max_memory_mb`` recycle a process: it stops claiming,
finishes its running jobs and exits with ``EXIT_RECYCLE``.

The watchdog also reports the nearest deadline of its jobs to the supervisor
through a pipe; a process that stays alive well past that deadline (a job
stuck in C code holding the GIL stops this thread too) is killed there.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import resource
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.utils import timezone

from .. import registry
from ..broker import ClaimedJob, Record
from .executor import internal_error, interrupted, timed_out

if TYPE_CHECKING:
    from .process import WorkerProcess

logger = logging.getLogger("django_bgjobs.worker")

#: Exit code of a process that recycled itself (job or memory limit).
EXIT_RECYCLE = 100
#: Exit code of a process that stopped because a job ran past its timeout.
EXIT_TIMED_OUT = 101


def rss_mb() -> float:
    """Return the resident memory of this process in MiB."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        # Peak, not current, RSS (KiB on Linux): good enough as a fallback.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: Seconds a coroutine job gets past its timeout to unwind after the event
#: loop cancelled it, before the watchdog treats its process as stuck (a
#: coroutine that blocks the loop cannot be cancelled).
ASYNC_TIMEOUT_MARGIN = 2.0


def deadline(job: ClaimedJob) -> dt.datetime | None:
    """Return when ``job`` runs out of time, or None if it has no timeout.

    A coroutine job is cancelled at its timeout by the event loop; its
    process is stopped only if it is still running ``ASYNC_TIMEOUT_MARGIN``
    later.
    """
    if job.timeout is None:
        return None
    seconds = job.timeout
    if registry.is_coroutine(job.task):
        seconds += ASYNC_TIMEOUT_MARGIN
    return job.started_at + dt.timedelta(seconds=seconds)


def overdue(jobs: Iterable[ClaimedJob], now: dt.datetime) -> list[ClaimedJob]:
    """Return the jobs of ``jobs`` whose deadline has passed at ``now``."""
    return [job for job in jobs if (end := deadline(job)) is not None and end <= now]


def nearest(jobs: Iterable[ClaimedJob]) -> dt.datetime | None:
    """Return the earliest deadline of ``jobs``, or None."""
    ends = [end for job in jobs if (end := deadline(job)) is not None]
    return min(ends, default=None)


def _timed_out(job: ClaimedJob, now: dt.datetime) -> Record:
    try:
        return timed_out(job, now)
    except Exception as error:
        # A bug here must not strand the job as running: dead-letter it.
        logger.exception("could not settle the timeout of job id=%s", job.id)
        return internal_error(job, error)


class Watchdog:
    """Enforces timeouts and recycling limits for one ``WorkerProcess``."""

    interval = 0.2

    def __init__(
        self,
        process: WorkerProcess,
        max_jobs: int | None = None,
        max_memory_mb: float | None = None,
        report_fd: int | None = None,
    ) -> None:
        self.process = process
        self.max_jobs = max_jobs
        self.max_memory_mb = max_memory_mb
        self.report_fd = report_fd
        self.reported: float | None = None
        self.claimed_count = 0
        self.draining = False
        self.thread = threading.Thread(target=self._loop, name="bgjobs-watchdog")
        self.thread.daemon = True

    def start(self) -> None:
        self.thread.start()

    # -- called by the claim loop ---------------------------------------------

    def claim_limit(self, limit: int) -> int:
        """Return how many jobs the process may claim now (0 when draining)."""
        if self.draining or self.check_limits():
            return 0
        if self.max_jobs is not None:
            return min(limit, self.max_jobs - self.claimed_count)
        return limit

    def claimed(self, count: int) -> None:
        self.claimed_count += count

    # -- the watchdog thread --------------------------------------------------

    def _loop(self) -> None:
        # Timeouts hold during a graceful stop too: the thread ends once the
        # process is stopping and runs nothing.
        process = self.process
        while True:
            if process.stopping.wait(self.interval):
                with process.lock:
                    if not process.running:
                        return
            try:
                self.tick()
            except Exception:
                logger.exception("watchdog check failed")

    def tick(self) -> None:
        """Check deadlines and limits once."""
        now = timezone.now()
        with self.process.lock:
            jobs = list(self.process.running.values())
        late = overdue(jobs, now)
        if late:
            self.time_out(late, now)
            return
        self.report(nearest(jobs), now)
        if self.process.stopping.is_set():
            return
        if (self.draining or self.check_limits()) and not jobs:
            self.process.exit_code = EXIT_RECYCLE
            self.process.stop()

    def check_limits(self) -> bool:
        """Start draining if a recycling limit is reached; return draining."""
        if not self.draining and (reason := self.recycle_reason()):
            self.draining = True
            with self.process.lock:
                running = len(self.process.running)
            logger.info(
                "worker recycling id=%s: %s; finishing %d running jobs",
                self.process.worker_id,
                reason,
                running,
            )
        return self.draining

    def recycle_reason(self) -> str:
        """Return why this process should be recycled, or ''."""
        if self.max_jobs is not None and self.claimed_count >= self.max_jobs:
            return f"ran {self.claimed_count} jobs (--max-jobs-per-process)"
        # A process already over the limit before its first job runs one job
        # anyway: recycling it at once would start processes in a loop.
        if self.max_memory_mb is not None and self.claimed_count:
            used = rss_mb()
            if used > self.max_memory_mb:
                return (
                    f"resident memory {used:.0f} MiB > {self.max_memory_mb:g} MiB "
                    "(--max-memory-per-process)"
                )
        return ""

    def time_out(self, late: list[ClaimedJob], now: dt.datetime) -> None:
        """Record ``late`` as timed out, release the rest, stop the process."""
        self.draining = True
        process = self.process
        late_ids = {job.id for job in late}
        # Under the lock: a shutdown that finds nothing running must not stop
        # the recorder before these outcomes are in its inbox.
        with process.lock:
            jobs = list(process.running.values())
            process.running.clear()
            process.exit_code = EXIT_TIMED_OUT
            for job in jobs:
                if job.id in late_ids:
                    process.recorder.put(_timed_out(job, now))
                else:
                    process.recorder.put(interrupted(job, now))
        for job in late:
            logger.error(
                "job timed out id=%s task=%s attempt=%s timeout=%gs; stopping "
                "worker process %s so that a fresh one replaces it",
                job.id,
                job.task,
                job.attempt,
                job.timeout,
                os.getpid(),
            )
        # Nothing is left to time out: the supervisor must not kill this
        # process while it records the outcomes.
        self.report(None, now)
        process.stop()

    def report(self, end: dt.datetime | None, now: dt.datetime) -> None:
        """Tell the supervisor the nearest deadline, in its monotonic clock."""
        if self.report_fd is None:
            return
        value = None
        if end is not None:
            value = round(time.monotonic() + (end - now).total_seconds(), 1)
        if value == self.reported:
            return
        self.reported = value
        line = b"-\n" if value is None else f"{value}\n".encode()
        try:
            os.write(self.report_fd, line)
        except OSError:
            # A full pipe or a gone supervisor: the next change is retried.
            self.reported = None
