"""The ``Listener`` contract, and ``Polling``: the listener that hears
nothing and leaves the worker to its poll."""

from __future__ import annotations


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
