"""When a dependency (the database, Redis) went away, and when it is back.

An ``OutageTracker`` is shared by the threads that call one dependency: the
first failure starts an outage, the first success afterwards ends it. The
callers log those two moments and stay silent in between, so an outage is
two log lines, not one per retry.
"""

from __future__ import annotations

import threading
import time


def describe(error: BaseException) -> str:
    """Return ``error``'s message on one line (drivers' span several)."""
    return " ".join(str(error).split()) or type(error).__name__


class OutageTracker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self) -> bool:
        """Count a failed call; return True if it starts an outage."""
        with self.lock:
            self.failures += 1
            if self.since is not None:
                return False
            self.since = time.monotonic()
            return True

    def succeeded(self) -> tuple[float, int] | None:
        """Note a call that worked; return ``(seconds, failed calls)`` if it
        ends an outage, else None."""
        if self.since is None:  # the common case: no lock
            return None
        with self.lock:
            if self.since is None:
                return None
            ended = (time.monotonic() - self.since, self.failures)
            self.since, self.failures = None, 0
            return ended
