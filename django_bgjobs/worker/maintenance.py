"""Heartbeat, registry row and housekeeping of one worker process, on a
thread of its own.

Each beat renews the leases of the process's running jobs in one statement
(which also reads the ones an operator cancelled, to flag them to the job
code) and touches its registry row in another, then tries to take the
maintenance lease. Only its holder returns jobs whose lease expired (their
worker died) to ready, or to dead letters when their attempts are spent,
marks silent workers lost, and prunes finished jobs past their retention
(batch after batch, for at most a third of a heartbeat interval), so at
most one process across all machines does this at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

from django.db import DatabaseError, connections
from django.utils import timezone

from ..broker import Broker, get_broker
from ..broker.pruning import Cuts, prune_dead_letters, prune_workers
from ..conf import get_settings
from .executor import interrupted, lost, timed_out
from .outage import Outage
from .ticker import Ticker
from .watchdog import deadline

logger = logging.getLogger("django_bgjobs.worker")

#: The name of the lease whose holder runs reap and prune.
MAINTENANCE_LEASE = "maintenance"


class Maintenance:
    def __init__(
        self,
        worker_id: str,
        using: str,
        queues: Sequence[str] | None = None,
        concurrency: int = 1,
        on_cancelled: Callable[[set[int]], None] | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.outage = outage or Outage(worker_id)
        self.on_cancelled = on_cancelled
        self.using = using
        self.queues = queues
        self.concurrency = concurrency
        self.done = threading.Event()
        self.cuts = Cuts()
        self.thread = threading.Thread(target=self._loop, name="bgjobs-heartbeat")
        self.thread.daemon = True
        # Schedules tick every second, apart from the heartbeat's pace.
        self.ticker = Ticker(using)

    def start(self) -> None:
        self.thread.start()
        self.ticker.start()

    def stop(self) -> None:
        self.done.set()
        self.ticker.stop()
        self.thread.join(timeout=10)

    def register(self) -> None:
        """Write this process's registry row; a failure is retried by the
        heartbeat, so a database that is away does not stop the start."""
        try:
            self._register(get_broker(self.using))
        except DatabaseError as error:
            logger.error("could not register worker id=%s: %s", self.worker_id, error)

    def deregister(self) -> None:
        """Mark this process stopped and let the maintenance lease go.

        Call it after the process's outcomes are recorded, so a stopped
        worker never leaves a running job behind.
        """
        broker = get_broker(self.using)
        now = timezone.now()
        try:
            broker.release_lease(MAINTENANCE_LEASE, self.worker_id, now)
            broker.deregister_worker(self.worker_id, now)
        except DatabaseError as error:
            logger.error("could not deregister worker id=%s: %s", self.worker_id, error)

    def _register(self, broker: Broker) -> None:
        broker.register_worker(
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            self.queues,
            self.concurrency,
            timezone.now(),
        )

    def _loop(self) -> None:
        conf = get_settings()
        broker = get_broker(self.using)
        beat = 0
        while not self.done.wait(conf.HEARTBEAT_SECONDS if beat else 0.5):
            beat += 1
            try:
                self._beat(broker, beat)
            except DatabaseError as error:
                self.outage.failed("renewing leases", error)
                connections[self.using].close()
            else:
                self.outage.succeeded()
        connections.close_all()

    def _beat(self, broker: Broker, beat: int) -> None:
        conf = get_settings()
        now = timezone.now()
        renewal = broker.heartbeat(self.worker_id, now, conf.LEASE_SECONDS)
        if renewal.cancelled and self.on_cancelled is not None:
            self.on_cancelled(renewal.cancelled)
        if not broker.touch_worker(self.worker_id, now) and not self.done.is_set():
            self._register(broker)
        # Every beat, so a dead worker's jobs (and a dead holder's lease)
        # come back within one lease plus one heartbeat.
        if self.holds_lease(broker, now):
            self.reap(broker)
            broker.mark_lost_workers(now, conf.LEASE_SECONDS)
            self.prune(broker, now, conf.HEARTBEAT_SECONDS / 3)

    def prune(self, broker: Broker, now: dt.datetime, budget: float) -> int:
        """Delete old workers' registry rows (one batch), then finished jobs
        and dead letters past their retention, one batch of ``PRUNE_BATCH``
        after another (each a short statement that locks only its rows),
        until none is left, ``budget`` seconds have passed or the process
        stops; return how many jobs and dead letters were deleted."""
        conf = get_settings()
        batch = conf.PRUNE_BATCH
        until = time.monotonic() + budget
        prune_workers(broker, now, conf.WORKER_TTL, batch)
        total = 0
        while True:
            jobs = broker.prune(now, batch, self.cuts)
            letters = prune_dead_letters(broker, now, conf.DEAD_LETTER_TTL, batch)
            total += jobs + letters
            if max(jobs, letters) < batch or time.monotonic() >= until:
                return total
            if self.done.is_set():
                return total

    def holds_lease(self, broker: Broker, now: dt.datetime) -> bool:
        """Take or renew the maintenance lease; return True if held."""
        return broker.acquire_lease(
            MAINTENANCE_LEASE, self.worker_id, now, get_settings().LEASE_SECONDS
        )

    def reap(self, broker: Broker) -> int:
        """Return jobs of dead workers to ready or dead letters; count them."""
        now = timezone.now()
        expired = broker.expired(now)
        if not expired:
            return 0
        applied = broker.record([lost(job, now) for job in expired])
        for record in applied:
            logger.warning(
                "job reaped id=%s task=%s worker=%s status=%s",
                record.job.id,
                record.job.task,
                record.job.worker,
                record.status,
            )
        return len(applied)


def recover(
    worker_id: str, why: str, killed_for_timeout: bool = False, using: str | None = None
) -> int:
    """Record the runs of a worker process that died; return how many.

    The supervisor calls this once ``waitpid`` has reported the process
    dead, so nothing can write for it any more and its jobs need not wait
    for their lease to run out. Each run is recorded as ``lost`` (charged),
    or, when the supervisor killed the process because a job overran its
    timeout, as ``timed_out`` for the overdue jobs and ``interrupted``
    (uncharged) for the others. The records are fenced like any other.
    """
    broker = get_broker(using)
    now = timezone.now()
    jobs = broker.expired(now, limit=10_000, worker=worker_id)
    records = []
    for job in jobs:
        if not killed_for_timeout:
            records.append(lost(job, now, why))
        elif (end := deadline(job)) is not None and end <= now:
            records.append(timed_out(job, now))
        else:
            records.append(interrupted(job, now))
    applied = broker.record(records)
    broker.mark_worker_lost(worker_id, now)
    for record in applied:
        logger.warning(
            "job recovered id=%s task=%s from dead worker %s: outcome=%s status=%s",
            record.job.id,
            record.job.task,
            worker_id,
            record.outcome,
            record.status,
        )
    return len(applied)
