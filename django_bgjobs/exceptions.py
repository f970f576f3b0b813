"""The exception tree of django-bgjobs.

Errors of input subclass the built-in family a caller expects
(``TypeError`` for a value of the wrong type, ``ValueError`` for a value out
of range), so code that catches those keeps working; configuration errors
subclass ``ImproperlyConfigured``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class BgJobsException(Exception):
    """Base class of every exception raised by django-bgjobs."""


class InvalidJob(BgJobsException, ValueError):
    """An enqueue option is out of range or malformed; nothing was written."""


class InvalidPayload(InvalidJob, TypeError):
    """An argument or result is not JSON; the message names path and type."""


class PayloadTooLarge(InvalidJob):
    """The encoded arguments exceed ``BGJOBS["MAX_PAYLOAD_BYTES"]``."""


class JobDoesNotExist(BgJobsException, LookupError):
    """No job row has the given id."""


class TaskNotRegistered(BgJobsException, LookupError):
    """A stored task name matches no ``@background`` function."""


class TooManyJobs(BgJobsException, RuntimeError):
    """``django_bgjobs.testing.drain()`` ran its ``max_jobs`` and jobs are
    still left: a job that enqueues another forever?"""


class InvalidSchedule(BgJobsException, ValueError):
    """A schedule's cron expression, time zone, interval, task or misfire
    policy is malformed; the message names it, ``field`` says which."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(BgJobsException):
    """An operation asked for a status change the lifecycle does not allow."""


class BgJobsImproperlyConfigured(ImproperlyConfigured):
    """``BGJOBS`` holds an unknown key or a value of the wrong type."""


class Permanent(BgJobsException):
    """Raise from a job to fail it now, skipping the attempts that remain.

    The job goes to dead letters with the reason
    ``permanent error: <exception class>: <message>``.
    """


class Snooze(BgJobsException):
    """Raise from a job to run it again after ``seconds``, without charging
    an attempt: the dependency it needs is busy or down, not the job wrong.

    The run is recorded with the outcome ``snoozed``; the job goes back to
    ``scheduled`` (or ``ready`` for 0 seconds). The retry policy does not
    apply, and ``attempts`` does not limit how often a job snoozes.
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        if not seconds >= 0:
            raise ValueError(f"Snooze needs seconds >= 0, got {seconds!r}.")
        self.seconds = float(seconds)
        self.reason = reason
        super().__init__(reason or f"snoozed for {self.seconds:g} s")


class CircuitOpen(Snooze):
    """Raised by a ``CircuitBreaker`` whose circuit is open: inside a job it
    snoozes the job until the circuit may be tried again."""


class JobCancelled(BgJobsException):
    """Raised by ``JobContext.raise_if_cancelled()`` once an operator has
    cancelled the running job; the job ends ``cancelled``, is not retried
    and leaves no dead letter. A job may raise it itself to the same effect.
    """
