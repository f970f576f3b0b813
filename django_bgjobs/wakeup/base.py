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
