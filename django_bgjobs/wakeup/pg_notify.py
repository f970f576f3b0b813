"""PostgreSQL LISTEN/NOTIFY on a dedicated connection.

A trigger on ``bgjobs_job`` (migration 0005) sends ``NOTIFY bgjobs_wake,
'<queue>'`` for the jobs each INSERT adds, and the broker sends one when a
recorded retry or release makes a job ready; both arrive when, and only if,
their transaction commits. Each worker process keeps one more connection
that LISTENs and wakes the claim loop for its queues. If that connection
breaks, the listener reconnects with a growing pause (at most 5 s), logging
one line when it goes away and one when it is back; the worker polls every
``POLL_INTERVAL`` meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from ..broker.postgresql import CHANNEL
from ..outages import describe
from .base import ThreadListener

logger = logging.getLogger("django_bgjobs.worker")


class PgListener(ThreadListener):
    name = "LISTEN/NOTIFY"

    def __init__(
        self,
        using: str,
        queues: Sequence[str] | None,
        on_wake: Callable[[], None],
    ) -> None:
        super().__init__(queues, on_wake)
        self.using = using
        self.wrapper: Any = None
        self.failed = False

    def listen(self) -> None:
        self.wrapper = connections.create_connection(self.using)
        self.wrapper.ensure_connection()
        raw = self.wrapper.connection
        raw.autocommit = True
        raw.execute(f"LISTEN {CHANNEL}")
        self.subscribed()
        while not self.done.is_set():
            for notify in raw.notifies(timeout=1.0):
                if self.wants(notify.payload):
                    self.on_wake()
                if self.done.is_set():
                    return

    def lost(self, error: BaseException) -> None:
        if not self.failed:
            self.failed = True
            logger.error(
                "LISTEN connection lost, polling every POLL_INTERVAL until it is "
                "back: %s",
                describe(error),
            )

    def back(self) -> None:
        if self.failed:
            self.failed = False
            logger.warning("LISTEN connection back; wake-ups resume")

    def close(self) -> None:
        wrapper, self.wrapper = self.wrapper, None
        if wrapper is None:
            return
        try:
            # A pooled connection goes back to the pool: not listening.
            if wrapper.connection is not None and wrapper.is_usable():
                wrapper.connection.execute("UNLISTEN *")
        except Exception:
            logger.debug("UNLISTEN failed", exc_info=True)
        try:
            wrapper.close()
        except Exception:
            logger.debug("closing the LISTEN connection failed", exc_info=True)
