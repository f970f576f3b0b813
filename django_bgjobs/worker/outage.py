"""One log line when the database goes away, and one when it is back.

The threads of a worker process (claim loop, recorder, heartbeat) share one
``Outage``: whichever fails first logs the outage, whichever succeeds first
afterwards logs its end with how long it lasted. The retries in between are
silent, so a restart of the database is two lines per process, not a flood.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("django_bgjobs.worker")


class Outage:
    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, doing: str, error: BaseException) -> None:
        """Note a failed database call; log it if it starts an outage."""
        with self.lock:
            self.failures += 1
            if self.since is not None:
                return
            self.since = time.monotonic()
        logger.error(
            "database unavailable while %s, worker id=%s keeps retrying until it "
            "answers: %s",
            doing,
            self.worker_id,
            " ".join(str(error).split()) or type(error).__name__,
        )

    def succeeded(self) -> None:
        """Note a database call that worked; log the end of an outage."""
        if self.since is None:  # the common case: no lock
            return
        with self.lock:
            if self.since is None:
                return
            lasted, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        logger.warning(
            "database available again, worker id=%s carries on after %.1f s "
            "(%d failed calls)",
            self.worker_id,
            lasted,
            failures,
        )
