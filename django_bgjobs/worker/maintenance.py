"""Heartbeat and housekeeping of one worker process, on a thread of its own.

Each beat renews the leases of the process's running jobs in one statement.
Every few beats it returns jobs whose lease expired (their worker died) to
ready, or to dead letters when their attempts are spent, and prunes finished
jobs past their retention. Both are conditional statements, safe to run from
several processes at once.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connections
from django.utils import timezone

from ..broker import Broker, get_broker
from ..conf import get_settings
from .executor import lost

logger = logging.getLogger("django_bgjobs.worker")


class Maintenance:
    def __init__(self, worker_id: str, using: str) -> None:
        self.worker_id = worker_id
        self.using = using
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="bgjobs-heartbeat")
        self.thread.daemon = True

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        conf = get_settings()
        broker = get_broker(self.using)
        beat = 0
        while not self.done.wait(conf.HEARTBEAT_SECONDS if beat else 0.5):
            beat += 1
            try:
                now = timezone.now()
                broker.heartbeat(self.worker_id, now, conf.LEASE_SECONDS)
                if beat % 3 == 1:
                    self.reap(broker)
                    broker.prune(now, conf.PRUNE_BATCH)
            except DatabaseError as error:
                logger.error("heartbeat failed, retrying next beat: %s", error)
                connections[self.using].close()
        connections.close_all()

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
