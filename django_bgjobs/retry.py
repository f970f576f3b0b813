"""Retry policies: how many attempts, how long to wait, which errors retry.

Pure functions of the attempt number and the error; no ORM and no clock (the
caller passes ``now``), so every rule is testable without a database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable

from .exceptions import Permanent

BackoffFunction = Callable[[int], float]


def fixed(delay: float) -> BackoffFunction:
    """Return a backoff that waits ``delay`` seconds before every retry."""
    return lambda attempt: delay


def exponential(delay: float, cap: float) -> BackoffFunction:
    """Return a backoff of ``delay * 2**(attempt-1)`` s, at most ``cap``."""
    return lambda attempt: min(delay * 2 ** max(attempt - 1, 0), cap)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed attempt and when the next one runs.

    ``attempts`` counts every run, the first one included. ``backoff`` maps
    the number of the attempt that failed (1-based) to seconds. ``jitter``
    spreads each wait uniformly over [50%, 100%] of it, so retries of jobs
    that failed together do not arrive together.
    """

    attempts: int
    backoff: BackoffFunction
    jitter: bool = False
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    dont_retry_on: tuple[type[BaseException], ...] = ()

    def is_retryable(self, error: BaseException) -> bool:
        """Return True if ``error`` may be retried at all."""
        if isinstance(error, (Permanent, *self.dont_retry_on)):
            return False
        return isinstance(error, self.retry_on)

    def next_run_at(
        self,
        *,
        charged: int,
        error: BaseException,
        now: dt.datetime,
        max_attempts: int | None = None,
        rand: Callable[[], float] = random.random,
    ) -> dt.datetime | None:
        """Return when to run again after a failed attempt, or None to give up.

        ``charged`` is the number of attempts spent so far, this one included.
        """
        limit = self.attempts if max_attempts is None else max_attempts
        if charged >= limit or not self.is_retryable(error):
            return None
        seconds = max(float(self.backoff(charged)), 0.0)
        if self.jitter:
            seconds *= 0.5 + 0.5 * rand()
        return now + dt.timedelta(seconds=seconds)


def make_backoff(
    kind: str | BackoffFunction, delay: float, cap: float
) -> BackoffFunction:
    """Return the backoff function named by ``kind``, or ``kind`` if callable.

    Raise ``ValueError`` if ``kind`` is neither a known name nor callable.
    """
    if callable(kind):
        return kind
    if kind == "fixed":
        return fixed(delay)
    if kind == "exponential":
        return exponential(delay, cap)
    raise ValueError(
        f"backoff must be 'fixed', 'exponential' or a callable, got {kind!r}."
    )
