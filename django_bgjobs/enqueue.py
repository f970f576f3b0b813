"""Enqueue: check the payload, INSERT in the caller's transaction, announce on
commit.

A job enqueued inside ``atomic()`` exists only if that transaction commits.
An idempotency key is enforced by the unique ``active_key`` column, never by
a read-then-write race.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from .broker.inserts import can_insert_many, insert_job, insert_many
from .conf import get_settings
from .exceptions import InvalidJob, JobDoesNotExist
from .models import Job
from .payload import encode_arguments
from .signals import job_enqueued
from .status import FINISHED, JobStatus
from .wakeup import announce_on_commit

if TYPE_CHECKING:
    from .decorators import JobOptions, JobSpec


class JobHandle:
    """A reference to an enqueued job; ``refresh()`` reads its row again."""

    def __init__(self, job: Job, *, created: bool = True) -> None:
        self._job: Job | None = job
        self._make: Callable[[], Job] | None = None
        self._id: int = job.pk
        self.created = created

    @classmethod
    def _lazy(cls, job_id: int, make: Callable[[], Job]) -> JobHandle:
        # enqueue_many: the Job instance is built only if someone asks.
        handle = cls.__new__(cls)
        handle._job, handle._make, handle._id = None, make, job_id
        handle.created = True
        return handle

    @property
    def job(self) -> Job:
        """The ``Job`` row as last read (or as inserted)."""
        if self._job is None:
            make, self._make = self._make, None
            if make is None:  # pragma: no cover - both unset is a bug
                raise RuntimeError("JobHandle has no job and no way to build it.")
            self._job = make()
        return self._job

    @job.setter
    def job(self, job: Job) -> None:
        self._job, self._make, self._id = job, None, job.pk

    def __repr__(self) -> str:
        return f"<JobHandle #{self.id} {self.job.task} {self.status}>"

    @property
    def id(self) -> int:
        return self._id if self._job is None else self._job.pk

    @property
    def status(self) -> str:
        return self.job.status

    @property
    def result(self) -> Any:
        return self.job.result

    @property
    def error(self) -> str:
        return self.job.error

    @property
    def progress(self) -> Any:
        """The progress the job last reported (a number 0..100 or any JSON),
        or None, as of the last read; ``refresh()`` reads it again."""
        return self.job.progress

    @property
    def is_finished(self) -> bool:
        return self.job.status in FINISHED

    def refresh(self) -> JobHandle:
        """Read the job's row again and return self.

        Raise ``JobDoesNotExist`` if the row was deleted (pruned).
        """
        try:
            self.job = Job.objects.get(pk=self.job.pk)
        except Job.DoesNotExist:
            raise JobDoesNotExist(f"Job {self.job.pk} no longer exists.") from None
        return self

    def wait(self, timeout: float = 10.0, interval: float = 0.05) -> JobHandle:
        """Refresh until the job finishes.

        Raise ``TimeoutError`` if it is still unfinished after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while not self.refresh().is_finished:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Job {self.id} is still {self.status} after {timeout} s."
                )
            time.sleep(interval)
        return self


def _run_at(options: JobOptions, now: dt.datetime) -> dt.datetime:
    if options.run_at is not None:
        return options.run_at
    if options.delay is None:
        return now
    delay = options.delay
    if not isinstance(delay, dt.timedelta):
        delay = dt.timedelta(seconds=delay)
    return now + delay


def _key(
    options: JobOptions,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    field: str = "key",
) -> Any:
    key = getattr(options, field)
    if callable(key):
        key = key(*args, **kwargs)
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise InvalidJob(
                f"The {field} function returned {key!r}; need a 1-255 char str."
            )
    return key


def build_job(
    spec: JobSpec[Any, Any],
    args: Iterable[Any],
    kwargs: dict[str, Any],
    now: dt.datetime,
) -> Job:
    """Return an unsaved ``Job`` for one call, after every input check.

    Raise ``InvalidPayload``, ``PayloadTooLarge`` or ``InvalidJob``.
    """
    job = _prototype(spec, now)
    return _with_item(job, _checked_item(spec, args, kwargs))


def _prototype(spec: JobSpec[Any, Any], now: dt.datetime) -> Job:
    """Return an unsaved ``Job`` of ``spec`` without arguments or keys: what
    every job of one enqueue (or one ``enqueue_many``) shares."""
    conf = get_settings()
    options = spec.options
    options.validate()
    run_at = _run_at(options, now)
    return Job(
        task=spec.name,
        queue=options.queue or conf.DEFAULT_QUEUE,
        priority=conf.DEFAULT_PRIORITY
        if options.priority is None
        else options.priority,
        status=JobStatus.SCHEDULED if run_at > now else JobStatus.READY,
        args=[],
        kwargs={},
        run_at=run_at,
        created_at=now,
        max_attempts=options.attempts or conf.DEFAULT_ATTEMPTS,
        timeout=options.timeout
        if options.timeout is not None
        else conf.DEFAULT_TIMEOUT,
        result_ttl=(
            options.result_ttl if options.result_ttl is not None else conf.RESULT_TTL
        ),
    )


#: One call's checked ``(args, kwargs, key, limit_key, args JSON, kwargs
#: JSON)``.
Item = tuple[list[Any], dict[str, Any], str | None, str | None, str, str]


def _checked_item(
    spec: JobSpec[Any, Any], args: Iterable[Any], kwargs: dict[str, Any]
) -> Item:
    """Check one call's arguments and build its keys (raise as build_job)."""
    options = spec.options
    args = tuple(args)
    if not isinstance(kwargs, dict):
        raise InvalidJob(f"kwargs must be a dict, got {type(kwargs).__name__}.")
    encoded = encode_arguments(args, kwargs, get_settings().MAX_PAYLOAD_BYTES)
    key = _key(options, args, kwargs)
    limit_key = _key(options, args, kwargs, "limit_key")
    return list(args), kwargs, key, limit_key, *encoded


def _with_item(job: Job, item: Item) -> Job:
    job.args, job.kwargs, job.key, job.limit_key = item[:4]
    job.active_key = job.key
    return job


def _copy(prototype: Job, item: Item) -> Job:
    # Model.__getstate__ gives the copy its own _state.
    return _with_item(copy.copy(prototype), item)


def _inserted(prototype: Job, item: Item, job_id: int, using: str) -> Job:
    job = _copy(prototype, item)
    job.pk = job_id
    job._state.adding, job._state.db = False, using
    return job


def _announce(jobs: list[Job], using: str) -> None:
    # Idle workers hear of new jobs from the database itself (on PostgreSQL a
    # trigger sends NOTIFY at commit, migration 0005) and, with REDIS_CACHE,
    # from a Redis publish once the transaction commits.
    _announce_ids([(job.task, job.queue, job.id) for job in jobs], using)


def _announce_ids(jobs: list[tuple[str, str, int]], using: str) -> None:
    """Announce ``(task, queue, id)`` jobs once the transaction commits."""
    announce_on_commit({queue for _, queue, _ in jobs}, using)
    if job_enqueued.has_listeners():

        def send() -> None:
            for task, queue, job_id in jobs:
                job_enqueued.send(task, job_id=job_id, queue=queue)

        transaction.on_commit(send, using=using)
    _run_inline(jobs, using)


def enqueue(
    spec: JobSpec[Any, Any], args: Iterable[Any], kwargs: dict[str, Any]
) -> JobHandle:
    """Insert one job for ``spec`` and return its handle.

    With a key that an unfinished job holds, return that job's handle with
    ``created=False`` and insert nothing.
    """
    job = build_job(spec, args, kwargs, timezone.now())
    using = router.db_for_write(Job)
    if job.active_key is None:
        insert_job(job, using)
        _announce([job], using)
        return JobHandle(job)
    return _enqueue_keyed(job, using)


def _enqueue_keyed(job: Job, using: str) -> JobHandle:
    # A finished holder may release the key between the failed INSERT and the
    # SELECT; one more INSERT then succeeds, so two rounds always settle it.
    for _ in range(3):
        try:
            with transaction.atomic(using=using):
                insert_job(job, using)
        except IntegrityError:
            job.pk = None
            existing = (
                Job.objects.using(using).filter(active_key=job.active_key).first()
            )
            if existing is not None:
                return JobHandle(existing, created=False)
            continue
        _announce([job], using)
        return JobHandle(job)
    raise InvalidJob(
        f"Could not enqueue with key {job.active_key!r}: it kept changing."
    )


def enqueue_many(
    spec: JobSpec[Any, Any], items: Iterable[tuple[Iterable[Any], dict[str, Any]]]
) -> list[JobHandle]:
    """Insert one job per ``(args, kwargs)`` item, in a few statements.

    Every item is checked first, so a bad one writes nothing. Items whose key
    an unfinished job holds (or an earlier item) get that job's handle.
    Without keys, the jobs go in through ``broker.inserts.insert_many`` (the
    shared values prepared once) and each handle builds its ``Job`` only
    when asked.
    """
    prototype = _prototype(spec, timezone.now())
    checked = []
    for index, item in enumerate(items):
        try:
            args, kwargs = item
        except (TypeError, ValueError):
            raise InvalidJob(
                f"enqueue_many item {index} must be an (args, kwargs) pair, got {item!r}."
            ) from None
        checked.append(_checked_item(spec, args, kwargs))
    if not checked:
        return []
    using = router.db_for_write(Job)
    if any(item[2] is not None for item in checked):
        return _enqueue_many_keyed([_copy(prototype, i) for i in checked], using)
    if not can_insert_many(using):
        jobs = [_copy(prototype, item) for item in checked]
        Job.objects.using(using).bulk_create(jobs)
        _announce(jobs, using)
        return [JobHandle(job) for job in jobs]
    ids = insert_many(prototype, [(i[4], i[5], i[3]) for i in checked], using)
    task, queue = prototype.task, prototype.queue
    _announce_ids([(task, queue, job_id) for job_id in ids], using)
    return [
        JobHandle._lazy(
            job_id, functools.partial(_inserted, prototype, i, job_id, using)
        )
        for job_id, i in zip(ids, checked, strict=True)
    ]


def _enqueue_many_keyed(jobs: list[Job], using: str) -> list[JobHandle]:
    unkeyed = [job for job in jobs if job.active_key is None]
    keyed = [job for job in jobs if job.active_key is not None]
    manager = Job.objects.using(using)
    with transaction.atomic(using=using):
        if unkeyed:
            manager.bulk_create(unkeyed)
        # ignore_conflicts returns no primary keys, so read the holders back.
        manager.bulk_create(keyed, ignore_conflicts=True)
        holders = {
            row.active_key: row
            for row in manager.filter(active_key__in=[j.active_key for j in keyed])
        }
    handles, seen, inserted = [], set(), list(unkeyed)
    for job in jobs:
        if job.active_key is None:
            handles.append(JobHandle(job))
            continue
        row = holders.get(job.active_key)
        if row is None:
            # The holder finished between the INSERT and the SELECT.
            handles.append(_enqueue_keyed(job, using))
            continue
        created = row.created_at == job.created_at and row.pk not in seen
        seen.add(row.pk)
        handles.append(JobHandle(row, created=created))
        if created:
            inserted.append(row)
    _announce(inserted, using)
    return handles


# -- inline mode (BGJOBS["INLINE"], django_bgjobs.testing.run_inline) ---------

#: ``(inline, raise_errors)`` set by ``django_bgjobs.testing.run_inline()`` for
#: its block, over the ``INLINE`` and ``INLINE_RAISE`` settings.
inline_override: ContextVar[tuple[bool, bool] | None] = ContextVar(
    "bgjobs_inline", default=None
)
#: ``run(jobs, using, raise_errors)``: runs just-enqueued ``(task, queue, id)``
#: jobs in this process. Installed by ``apps.ready()``: enqueue may not import
#: the worker (STYLE.md, layers).
inline_runner: Callable[[list[tuple[str, str, int]], str, bool], None] | None = None


def install_inline_runner(
    runner: Callable[[list[tuple[str, str, int]], str, bool], None],
) -> None:
    """Install the function that runs jobs inline (``apps.ready()`` does)."""
    global inline_runner
    inline_runner = runner


def _run_inline(jobs: list[tuple[str, str, int]], using: str) -> None:
    mode = inline_override.get()
    if mode is None:
        conf = get_settings()
        mode = (conf.INLINE, conf.INLINE_RAISE)
    if mode[0] and jobs and inline_runner is not None:
        inline_runner(jobs, using, mode[1])
