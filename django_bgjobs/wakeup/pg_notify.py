"""PostgreSQL LISTEN/NOTIFY on a dedicated connection.

Enqueue (and a retry or release that makes a job ready) sends
``NOTIFY bgjobs_wake, '<queue>'`` in its transaction, so the notification
arrives when, and only if, it commits. Each worker process keeps one more
connection that LISTENs and wakes the claim loop for its queues. If that
connection breaks, the listener reconnects with a growing pause (at most
5 s), logging one line when it goes away and one when it is back; the
worker polls every ``POLL_INTERVAL`` meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from ..broker.postgresql import CHANNEL
from .base import Listener

logger = logging.getLogger("django_bgjobs.worker")


class PgListener(Listener):
    name = "LISTEN/NOTIFY"

    def __init__(
        self,
        using: str,
        queues: Sequence[str] | None,
        on_wake: Callable[[], None],
    ) -> None:
        self.using = using
        self.queues = frozenset(queues) if queues else None
        self.on_wake = on_wake
        self.done = threading.Event()
        self.listening = threading.Event()
        self.wrapper: Any = None
        self.failed = False
        self.thread = threading.Thread(
            target=self._loop, name="bgjobs-listener", daemon=True
        )

    @property
    def connected(self) -> bool:
        return self.listening.is_set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        delay = 0.1
        while not self.done.is_set():
            try:
                self._listen()
            except Exception as error:
                self.listening.clear()
                if not self.failed:
                    self.failed = True
                    logger.error(
                        "LISTEN connection lost, polling every POLL_INTERVAL "
                        "until it is back: %s",
                        " ".join(str(error).split()) or type(error).__name__,
                    )
                self._close()
                self.done.wait(delay)
                delay = min(delay * 2, 5.0)
        self._close()

    def _listen(self) -> None:
        self.wrapper = connections.create_connection(self.using)
        self.wrapper.ensure_connection()
        raw = self.wrapper.connection
        raw.autocommit = True
        raw.execute(f"LISTEN {CHANNEL}")
        if self.failed:
            self.failed = False
            logger.warning("LISTEN connection back; wake-ups resume")
        self.listening.set()
        # Jobs may have become ready while nobody listened.
        self.on_wake()
        while not self.done.is_set():
            for notify in raw.notifies(timeout=1.0):
                if self.queues is None or notify.payload in self.queues:
                    self.on_wake()
                if self.done.is_set():
                    return

    def _close(self) -> None:
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
