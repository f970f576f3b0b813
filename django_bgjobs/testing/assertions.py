"""Assertions on the jobs a test enqueued, read from the database.

The rows are the record: jobs enqueued by other threads, by jobs, by
``enqueue_many`` and by the ``django.tasks`` backend all count, and so do
jobs that already ran (inline, or by ``drain()``). A rolled-back enqueue
left no row and does not count.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..decorators import JobSpec
    from ..models import Job

#: Most jobs a failure message lists.
SHOWN = 20


def _task_name(task: JobSpec[Any, Any] | str | None) -> str | None:
    if task is None or isinstance(task, str):
        return task
    name = getattr(task, "name", None)
    if not isinstance(name, str):
        raise TypeError(
            f"task must be a @background function or a task name, got {task!r}."
        )
    return name


def _as_json(value: Any) -> Any:
    # Stored arguments went through JSON: tuples are lists there.
    return json.loads(json.dumps(value))


def _last_id(using: str | None) -> int:
    from django.db.models import Max

    from ..models import Job

    return int(Job.objects.using(using).aggregate(last=Max("id"))["last"] or 0)


def _describe(job: Job) -> str:
    return (
        f"#{job.pk} {job.task} args={job.args!r} kwargs={job.kwargs!r} "
        f"queue={job.queue} status={job.status}"
    )


def _what(task: str | None, args: Any, kwargs: Any, queue: str | None) -> str:
    parts = [task or "any task"]
    if args is not None:
        parts.append(f"args={list(args)!r}")
    if kwargs is not None:
        parts.append(f"kwargs={kwargs!r}")
    if queue is not None:
        parts.append(f"queue={queue}")
    return " ".join(parts)


class EnqueuedJobs:
    """The jobs enqueued after job id ``after`` (None: every job), in the
    order they were enqueued; ``capture_enqueued()`` makes one for a block.

    Call it to filter the jobs; ``assert_enqueued`` and
    ``assert_not_enqueued`` check them.
    """

    def __init__(self, after: int | None = None, using: str | None = None) -> None:
        self.after = after
        self.using = using
        #: The last job id that counts (None: no end); ``capture_enqueued()``
        #: sets it when its block ends.
        self.until: int | None = None

    @classmethod
    def from_now(cls, using: str | None = None) -> EnqueuedJobs:
        """Return an ``EnqueuedJobs`` of the jobs enqueued from now on."""
        return cls(after=_last_id(using), using=using)

    def __call__(
        self,
        task: JobSpec[Any, Any] | str | None = None,
        queue: str | None = None,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> list[Job]:
        """Return the jobs of ``task`` (a ``@background`` function or a task
        name) in ``queue`` called with exactly ``args`` and ``kwargs``; each
        filter left out matches every job."""
        name = _task_name(task)
        jobs = self._all()
        if name is not None:
            jobs = [job for job in jobs if job.task == name]
        if queue is not None:
            jobs = [job for job in jobs if job.queue == queue]
        if args is not None:
            jobs = [job for job in jobs if job.args == _as_json(list(args))]
        if kwargs is not None:
            jobs = [job for job in jobs if job.kwargs == _as_json(kwargs)]
        return jobs

    def _all(self) -> list[Job]:
        from ..models import Job

        jobs = Job.objects.using(self.using).order_by("id")
        if self.after is not None:
            jobs = jobs.filter(id__gt=self.after)
        if self.until is not None:
            jobs = jobs.filter(id__lte=self.until)
        return list(jobs)

    def assert_enqueued(
        self,
        task: JobSpec[Any, Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        count: int | None = None,
    ) -> list[Job]:
        """Return the matching jobs (as ``__call__``).

        Raise ``AssertionError`` if there is none, or with ``count``, if
        there are not exactly ``count``; the message lists the jobs that
        were enqueued instead.
        """
        found = self(task, queue, args=args, kwargs=kwargs)
        if (count is None and found) or len(found) == count:
            return found
        wanted = "at least 1" if count is None else str(count)
        what = _what(_task_name(task), args, kwargs, queue)
        raise AssertionError(
            f"expected {wanted} job(s) of {what}, found {len(found)}; "
            + self._listing()
        )

    def assert_not_enqueued(
        self,
        task: JobSpec[Any, Any] | str | None = None,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        """Raise ``AssertionError`` if a matching job was enqueued (with no
        filter: if any job was); the message lists them."""
        found = self(task, queue, args=args, kwargs=kwargs)
        if found:
            what = _what(_task_name(task), args, kwargs, queue)
            raise AssertionError(
                f"expected no job of {what}, found {len(found)}:\n"
                + "\n".join(f"  {_describe(job)}" for job in found[:SHOWN])
            )

    def _listing(self) -> str:
        jobs = self._all()
        if not jobs:
            return "no job was enqueued."
        lines = [f"  {_describe(job)}" for job in jobs[:SHOWN]]
        if len(jobs) > SHOWN:
            lines.append(f"  ... and {len(jobs) - SHOWN} more")
        return "enqueued were:\n" + "\n".join(lines)


def enqueued(
    task: JobSpec[Any, Any] | str | None = None,
    queue: str | None = None,
    *,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> list[Job]:
    """Return the jobs in the database of ``task`` in ``queue`` with exactly
    ``args`` and ``kwargs`` (every filter optional), oldest first."""
    return EnqueuedJobs()(task, queue, args=args, kwargs=kwargs)


def assert_enqueued(
    task: JobSpec[Any, Any] | str,
    *,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    count: int | None = None,
) -> list[Job]:
    """Return the matching jobs in the database.

    Raise ``AssertionError`` if there is none (or not exactly ``count``),
    naming the jobs that are there.
    """
    return EnqueuedJobs().assert_enqueued(
        task, args=args, kwargs=kwargs, queue=queue, count=count
    )


def assert_not_enqueued(
    task: JobSpec[Any, Any] | str | None = None,
    *,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
) -> None:
    """Raise ``AssertionError`` if a matching job is in the database."""
    EnqueuedJobs().assert_not_enqueued(task, args=args, kwargs=kwargs, queue=queue)


@contextlib.contextmanager
def capture_enqueued(using: str | None = None) -> Iterator[EnqueuedJobs]:
    """Yield the ``EnqueuedJobs`` of the jobs enqueued in the block (by any
    thread, or by jobs), read from the database when asked."""
    captured = EnqueuedJobs.from_now(using)
    try:
        yield captured
    finally:
        captured.until = _last_id(using)
