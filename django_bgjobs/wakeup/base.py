"""The ``Listener`` contract, and ``Polling``: the listener that hears
nothing and leaves the worker to its poll."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence


class Listener:
    """Calls its ``on_wake`` when new jobs are ready; started and stopped
    by a worker process."""

    #: A short name for logs.
    name = "polling"

    def start(self) -> None:
        """Start listening (on a thread of its own, if it needs one)."""

    def stop(self) -> None:
        """Stop listening and close what ``start`` opened."""

    @property
    def connected(self) -> bool:
        """True while wake-ups arrive; the worker then polls less often."""
        return False


class Polling(Listener):
    """No wake-ups: the worker polls every ``POLL_INTERVAL``."""


class Listeners(Listener):
    """Several listeners as one: connected while any of them is."""

    def __init__(self, listeners: list[Listener]) -> None:
        self.listeners = listeners
        self.name = " + ".join(listener.name for listener in listeners)

    def start(self) -> None:
        for listener in self.listeners:
            listener.start()

    def stop(self) -> None:
        for listener in self.listeners:
            listener.stop()

    @property
    def connected(self) -> bool:
        return any(listener.connected for listener in self.listeners)


class ThreadListener(Listener):
    """A listener on a thread of its own that reconnects after a failure.

    Subclasses implement ``listen`` (connect, subscribe, call
    ``subscribed()``, then wake on each message until ``done`` is set),
    ``close``, and the ``lost``/``back`` hooks that log the outage. Between
    tries the pause grows from 0.1 s to at most 5 s.
    """

    thread_name = "bgjobs-listener"
    #: The exceptions that mean "the connection is gone: try again".
    errors: tuple[type[BaseException], ...] = (Exception,)

    def __init__(
        self, queues: Sequence[str] | None, on_wake: Callable[[], None]
    ) -> None:
        self.queues = frozenset(queues) if queues else None
        self.on_wake = on_wake
        self.done = threading.Event()
        self.listening = threading.Event()
        self.delay = 0.1
        self.thread = threading.Thread(
            target=self._loop, name=self.thread_name, daemon=True
        )

    @property
    def connected(self) -> bool:
        return self.listening.is_set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def wants(self, queue: str) -> bool:
        """Return True if a job of ``queue`` is for this worker."""
        return self.queues is None or queue in self.queues

    def subscribed(self) -> None:
        """Call from ``listen`` once messages can arrive."""
        self.back()
        self.delay = 0.1
        self.listening.set()
        self.on_wake()  # jobs may have become ready while nobody listened

    def _loop(self) -> None:
        while not self.done.is_set():
            try:
                self.listen()
            except self.errors as error:
                self.listening.clear()
                self.lost(error)
                self.close()
                self.done.wait(self.delay)
                self.delay = min(self.delay * 2, 5.0)
        self.close()

    def listen(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def lost(self, error: BaseException) -> None:
        """Note that the connection failed (log it once per outage)."""

    def back(self) -> None:
        """Note that listening works again (log the end of an outage)."""
