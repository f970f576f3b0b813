"""One log line when the database goes away, and one when it is back.

The threads of a worker process (claim loop, recorder, heartbeat) share one
``Outage``: whichever fails first logs the outage, whichever succeeds first
afterwards logs its end with how long it lasted. The retries in between are
silent, so a restart of the database is two lines per process, not a flood.
"""

from __future__ import annotations

import logging

from ..outages import OutageTracker, describe

logger = logging.getLogger("django_bgjobs.worker")


class Outage:
    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.tracker = OutageTracker()

    @property
    def active(self) -> bool:
        return self.tracker.down

    def failed(self, doing: str, error: BaseException) -> None:
        """Note a failed database call; log it if it starts an outage."""
        if self.tracker.failed():
            logger.error(
                "database unavailable while %s, worker id=%s keeps retrying until "
                "it answers: %s",
                doing,
                self.worker_id,
                describe(error),
            )

    def succeeded(self) -> None:
        """Note a database call that worked; log the end of an outage."""
        if (ended := self.tracker.succeeded()) is not None:
            logger.warning(
                "database available again, worker id=%s carries on after %.1f s "
                "(%d failed calls)",
                self.worker_id,
                *ended,
            )
