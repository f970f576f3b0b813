"""What a running job may ask about itself: ``current_job()``.

The worker sets a ``JobContext`` for the run of a job, in a ``ContextVar``:
each thread, and each asyncio task of the worker's event loop, sees its own
job. ``is_cancelled()`` turns true once an operator has cancelled the job and
the worker's heartbeat has seen it (within ``HEARTBEAT_SECONDS``). Reading it
costs no query. ``set_progress()`` hands the job's progress to the worker,
which writes it at most once per ``PROGRESS_INTERVAL``.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from .exceptions import JobCancelled
from .payload import check_progress


class ProgressSink(Protocol):
    """Where the progress a running job reports goes (the worker's writer)."""

    def progress(self, job_id: int, attempt: int, value: Any) -> None: ...


class JobContext:
    """The job the current thread or task runs: its id, attempt and
    cancellation."""

    def __init__(
        self,
        id: int | None = None,
        task: str = "",
        queue: str = "",
        attempt: int = 0,
        cancel: threading.Event | None = None,
        progress: ProgressSink | None = None,
    ) -> None:
        self.id = id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self._cancel = cancel or threading.Event()
        self._progress = progress

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

    def set_progress(self, value: Any) -> None:
        """Report the job's progress: a number from 0 to 100 (a percentage)
        or any other JSON value (``{"done": 40, "total": 90}``).

        Cheap enough for a tight loop: the worker writes the newest value at
        most once per ``PROGRESS_INTERVAL`` and always writes the last one
        before the job's outcome. Outside a worker it only checks the value.
        Raise ``TypeError`` (``InvalidPayload``) if the value is not JSON,
        ``ValueError`` if a number is outside 0..100.
        """
        check_progress(value)
        if self._progress is not None and self.id is not None:
            self._progress.progress(self.id, self.attempt, value)


#: The context of a call outside a worker (inline, or in a test): it has no
#: id, is never cancelled, and drops progress after checking it.
INLINE = JobContext()

_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "django_bgjobs.current_job", default=None
)


def current_job() -> JobContext:
    """Return the context of the job this thread or asyncio task runs.

    Outside a worker run (a direct call of the function) it returns a
    context with ``id`` None that is never cancelled, so job code can call
    ``current_job().is_cancelled()`` unconditionally.
    """
    context = _current.get()
    return context if context is not None else INLINE


@contextmanager
def running(context: JobContext) -> Iterator[JobContext]:
    """Make ``context`` the current job of this thread or task for the
    block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
