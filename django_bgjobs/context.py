"""What a running job may ask about itself: ``current_job()``.

The worker sets a ``JobContext`` for the thread that runs a job. Its
``is_cancelled()`` turns true once an operator has cancelled the job and the
worker's heartbeat has seen it (within ``HEARTBEAT_SECONDS``). Reading it
costs no query.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .exceptions import JobCancelled

_local = threading.local()


class JobContext:
    """The job the current thread runs: its id, attempt and cancellation."""

    def __init__(
        self,
        id: int | None = None,
        task: str = "",
        queue: str = "",
        attempt: int = 0,
        cancel: threading.Event | None = None,
    ) -> None:
        self.id = id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self._cancel = cancel or threading.Event()

    def __repr__(self) -> str:
        return f"<JobContext id={self.id} task={self.task} attempt={self.attempt}>"

    def is_cancelled(self) -> bool:
        """Return True once an operator has cancelled this running job."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise ``JobCancelled`` if an operator has cancelled this job.

        The job then ends ``cancelled``: not retried, no dead letter.
        """
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.id} was cancelled by an operator")

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancellation;
        return True if the job was cancelled."""
        return self._cancel.wait(timeout)


#: The context of a call outside a worker (inline, or in a test): it has no
#: id and is never cancelled.
INLINE = JobContext()


def current_job() -> JobContext:
    """Return the context of the job this thread runs.

    Outside a worker run (a direct call of the function) it returns a
    context with ``id`` None that is never cancelled, so job code can call
    ``current_job().is_cancelled()`` unconditionally.
    """
    context: JobContext | None = getattr(_local, "job", None)
    return context if context is not None else INLINE


@contextmanager
def running(context: JobContext) -> Iterator[JobContext]:
    """Make ``context`` the current job of this thread for the block."""
    previous = getattr(_local, "job", None)
    _local.job = context
    try:
        yield context
    finally:
        _local.job = previous
