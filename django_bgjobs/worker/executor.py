"""Run one claimed job and return an ``Outcome``; write nothing.

The broker records the outcome afterwards, in a batch. Job code gets Django's
per-request connection semantics: ``close_old_connections`` around the run,
so a job that never touches the database never opens a connection. A
coroutine job (``async def``) runs under ``arun`` on the worker's event loop,
or to completion on a loop of its own when ``run`` is called from synchronous
code; its ``timeout`` cancels it there, and so does an operator's cancel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import (
    SyncToAsync,
    ThreadSensitiveContext,
    async_to_sync,
    sync_to_async,
)
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from .. import registry
from ..broker import Broker, ClaimedJob, Record
from ..broker.base import CANCELLED_ERROR
from ..context import JobContext, ProgressSink, running
from ..exceptions import (
    InvalidPayload,
    JobCancelled,
    Permanent,
    Snooze,
    TaskNotRegistered,
)
from ..payload import check_result
from ..status import AttemptOutcome, JobStatus
from .progress import Note, ProgressNotes


@dataclasses.dataclass
class Outcome:
    """What one run produced: a value, or the error it raised."""

    value: Any = None
    error: BaseException | None = None
    traceback: str = ""
    finished_at: dt.datetime = dataclasses.field(default_factory=timezone.now)
    #: Set when the run's transaction already recorded its success
    #: (``atomic=True``): the applied record, or None if the fence refused it.
    committed: bool = False
    record: Record | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor:
    """Calls a job's registered function with its stored arguments.

    ``progress`` receives what the job reports with ``set_progress()``;
    without it (inline runs) progress is checked and dropped.
    """

    #: Close unusable and obsolete connections around each run (Django's
    #: per-request semantics). ``worker.local`` turns it off, as Django's test
    #: client does for requests: it would close a test's open transaction.
    release_connections = True

    def __init__(self, progress: ProgressSink | None = None) -> None:
        self.progress = progress

    def _release_connections(self) -> None:
        if self.release_connections:
            close_old_connections()

    def run(self, job: ClaimedJob, broker: Broker | None = None) -> Outcome:
        """Run ``job``; return its outcome (the job's errors never escape).

        With ``broker`` and an ``atomic=True`` task, record the success in
        the job's own transaction. A coroutine job runs to completion here,
        on an event loop of its own.
        """
        try:
            spec = registry.get(job.task)
        except TaskNotRegistered as error:
            return Outcome(error=error)
        if spec.is_async:
            return self._run_coroutine(job)
        if spec.options.atomic and broker is not None:
            return self._run_atomic(spec.func, job, broker)
        self._release_connections()
        try:
            with running(self.context_of(job)):
                value = spec.func(*job.args, **job.kwargs)
                if inspect.isawaitable(value):
                    # A plain function that returns a coroutine (a wrapper).
                    value = _complete(_awaited(value))
        # SystemExit from a job (sys.exit()) is the job's failure, not the
        # worker's: letting it escape would strand the job as running.
        except BaseException as error:
            return Outcome(error=error, traceback=traceback.format_exc())
        finally:
            self._release_connections()
        return _checked(value)

    async def arun(self, job: ClaimedJob, *, own_connections: bool = True) -> Outcome:
        """Run coroutine job ``job`` on the running event loop; return its
        outcome.

        Its ``timeout`` (from the claim) cancels it and yields a
        ``JobTimeout`` outcome; an operator's cancel, passed on by
        cancelling its asyncio task, yields ``JobCancelled``. Any other
        cancellation (the worker's shutdown) propagates. With
        ``own_connections`` the database connections the job opened (through
        ``sync_to_async`` or the async ORM, on a thread of the job's own) are
        closed when it ends, as Django does at the end of an ASGI request.
        """
        try:
            spec = registry.get(job.task)
        except TaskNotRegistered as error:
            return Outcome(error=error)
        if not own_connections:
            return await self._arun(spec.func, job)
        # As Django serves an ASGI request: the job's thread-sensitive
        # sync_to_async calls (the async ORM's too) run on a thread of its
        # own, so its connection is its own; closed when the job ends, as
        # that thread ends with it.
        async with ThreadSensitiveContext() as context:
            try:
                return await self._arun(spec.func, job)
            finally:
                if _used_a_thread(context):
                    await sync_to_async(connections.close_all)()

    async def _arun(self, func: Callable[..., Any], job: ClaimedJob) -> Outcome:
        limit = asyncio.timeout_at(_deadline(job))
        try:
            with running(self.context_of(job)):
                async with limit:
                    value = await func(*job.args, **job.kwargs)
        except TimeoutError as error:
            if not limit.expired():  # the job's own TimeoutError
                return Outcome(error=error, traceback=traceback.format_exc())
            late = JobTimeout(f"the job ran past its timeout of {job.timeout:g} s")
            return Outcome(error=late, traceback=traceback.format_exc())
        except asyncio.CancelledError:
            if not job.cancel.is_set():
                raise
            cancelled = JobCancelled(f"job {job.id} was cancelled by an operator")
            return Outcome(error=cancelled, traceback=traceback.format_exc())
        except BaseException as error:
            return Outcome(error=error, traceback=traceback.format_exc())
        return _checked(value)

    def _run_coroutine(self, job: ClaimedJob) -> Outcome:
        # Synchronous caller (a test's drain, or a thread): the job's
        # connections are the caller's, so they are handled as for a sync job.
        self._release_connections()
        try:
            outcome: Outcome = _complete(self.arun(job, own_connections=False))
            return outcome
        finally:
            self._release_connections()

    def context_of(self, job: ClaimedJob) -> JobContext:
        """Return the ``current_job()`` context for a run of ``job``."""
        return context_of(job, self.progress)

    def _run_atomic(
        self, func: Callable[..., Any], job: ClaimedJob, broker: Broker
    ) -> Outcome:
        self._release_connections()
        try:
            record = _run_atomic_body(func, job, broker, self.context_of(job), self)
        except _Fenced:
            return Outcome(committed=True)
        except BaseException as error:
            return Outcome(error=error, traceback=traceback.format_exc())
        finally:
            self._release_connections()
        return Outcome(
            value=record.result if record else None, committed=True, record=record
        )


def _checked(value: Any) -> Outcome:
    try:
        check_result(value)
    except InvalidPayload as error:
        # Running the job again returns the same value: do not retry it.
        return Outcome(error=Permanent(f"the job's return value: {error}"))
    return Outcome(value=value)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _complete(coroutine: Awaitable[Any]) -> Any:
    """Run ``coroutine`` to completion from synchronous code and return its
    value: ``async_to_sync`` where it may, so that the coroutine's
    ``sync_to_async`` calls run back on this thread (and its connection, a
    test's transaction included); on a thread of its own when this thread
    already runs an event loop, which must not be blocked from inside."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return async_to_sync(_awaited)(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_awaited(coroutine))
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, name="bgjobs-inline-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _used_a_thread(context: ThreadSensitiveContext) -> bool:
    """Return True if the job in ``context`` ran code on its sync thread.

    Reads asgiref's map of contexts to threads (it holds an entry once a
    thread-sensitive call made one); without it, assume a thread was used.
    """
    threads = getattr(SyncToAsync, "context_to_thread_executor", None)
    return threads is None or context in threads


def _deadline(job: ClaimedJob) -> float | None:
    """Return the loop time at which ``job`` runs out of time, or None."""
    if job.timeout is None:
        return None
    left = (job.started_at - timezone.now()).total_seconds() + job.timeout
    return asyncio.get_running_loop().time() + max(left, 0.0)


def _final_progress(executor: Executor, job: ClaimedJob) -> list[Note]:
    if isinstance(executor.progress, ProgressNotes):
        return executor.progress.final({job.id})
    return []


class _Fenced(Exception):
    """The success of an atomic job was refused: roll its writes back."""


def _run_atomic_body(
    func: Callable[..., Any],
    job: ClaimedJob,
    broker: Broker,
    context: JobContext,
    executor: Executor,
) -> Record | None:
    with transaction.atomic(using=broker.using), running(context):
        value = func(*job.args, **job.kwargs)
        try:
            check_result(value)
        except InvalidPayload as error:
            raise Permanent(f"the job's return value: {error}") from None
        record = settle(job, Outcome(value=value))
        # The job's last progress, in the transaction of its success.
        notes = _final_progress(executor, job)
        if notes:
            broker.write_progress(notes, timezone.now())
        # The same fenced UPDATE as any outcome: a stale run matches no row.
        if not broker.record([record]):
            raise _Fenced
    return record


def context_of(job: ClaimedJob, progress: ProgressSink | None = None) -> JobContext:
    """Return the ``current_job()`` context for a run of ``job``."""
    return JobContext(job.id, job.task, job.queue, job.attempt, job.cancel, progress)


def clean_text(text: str) -> str:
    """Return ``text`` as the database can store it: NUL bytes and lone
    surrogates (PostgreSQL refuses both) become backslash escapes."""
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_class(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")


def settle(job: ClaimedJob, outcome: Outcome) -> Record:
    """Turn an outcome into the transition to record, by the retry policy."""
    now = outcome.finished_at
    if outcome.ok:
        return Record(
            job=job,
            status=JobStatus.SUCCEEDED,
            outcome=AttemptOutcome.SUCCEEDED,
            finished_at=now,
            result=outcome.value,
        )
    error = outcome.error
    assert error is not None  # noqa: S101  (ok is False)
    if isinstance(error, JobTimeout):
        # A coroutine job cancelled at its timeout by the event loop.
        return timed_out(job, now)
    if isinstance(error, Snooze):
        wake_at = now + dt.timedelta(seconds=error.seconds)
        return Record(
            job=job,
            status=JobStatus.SCHEDULED if wake_at > now else JobStatus.READY,
            outcome=AttemptOutcome.SNOOZED,
            finished_at=now,
            run_at=wake_at,
            error_class=error_class(error),
            error_message=clean_text(str(error)),
        )
    if isinstance(error, JobCancelled):
        return Record(
            job=job,
            status=JobStatus.CANCELLED,
            outcome=AttemptOutcome.CANCELLED,
            finished_at=now,
            error_class=CANCELLED_ERROR,
            error_message=clean_text(str(error)),
            traceback=clean_text(outcome.traceback),
        )
    record = Record(
        job=job,
        status=JobStatus.FAILED,
        outcome=AttemptOutcome.FAILED,
        finished_at=now,
        error_class=error_class(error),
        error_message=clean_text(str(error)),
        traceback=clean_text(outcome.traceback),
    )
    if isinstance(error, TaskNotRegistered):
        record.reason = str(error)
        return record
    policy = registry.get(job.task).retry_policy()
    run_at = policy.next_run_at(
        charged=job.charged, error=error, now=now, max_attempts=job.max_attempts
    )
    if run_at is not None:
        record.status = JobStatus.SCHEDULED if run_at > now else JobStatus.READY
        record.run_at = run_at
    elif isinstance(error, Permanent):
        record.reason = f"permanent error: {record.error}"
    elif not policy.is_retryable(error):
        record.reason = f"not retryable: {record.error}"
    else:
        record.reason = f"attempts exhausted ({job.charged}): {record.error}"
    return record


class JobTimeout(Exception):
    """The error recorded for a run that went past its job's ``timeout``."""


def timed_out(job: ClaimedJob, now: dt.datetime) -> Record:
    """Return the record for a run killed at its timeout.

    The attempt is charged. The job is retried, after the task's backoff,
    while attempts remain: ``retry_on`` and ``dont_retry_on`` classify the
    errors a job raises, and a timeout is not one of them.
    """
    error = JobTimeout(f"the job ran past its timeout of {job.timeout:g} s")
    record = Record(
        job=job,
        status=JobStatus.FAILED,
        outcome=AttemptOutcome.TIMED_OUT,
        finished_at=now,
        error_class="JobTimeout",
        error_message=str(error),
    )
    try:
        policy = registry.get(job.task).retry_policy()
    except TaskNotRegistered:
        policy = None
    if policy is not None:
        policy = dataclasses.replace(policy, retry_on=(JobTimeout,), dont_retry_on=())
        run_at = policy.next_run_at(
            charged=job.charged, error=error, now=now, max_attempts=job.max_attempts
        )
        if run_at is not None:
            record.status = JobStatus.SCHEDULED if run_at > now else JobStatus.READY
            record.run_at = run_at
            return record
    record.reason = f"timed out; attempts exhausted ({job.charged}): {record.error}"
    return record


def interrupted(job: ClaimedJob, now: dt.datetime) -> Record:
    """Return the record that hands a job back to ready without charging it."""
    return Record(
        job=job,
        status=JobStatus.READY,
        outcome=AttemptOutcome.INTERRUPTED,
        finished_at=now,
        run_at=now,
        error_class="WorkerShutdown",
        error_message="the worker stopped before the job finished",
    )


def lost(job: ClaimedJob, now: dt.datetime, why: str = "") -> Record:
    """Return the record for a job whose worker died: its lease expired, or
    (``why``) its supervisor saw the process die."""
    record = Record(
        job=job,
        status=JobStatus.READY,
        outcome=AttemptOutcome.LOST,
        finished_at=now,
        run_at=now,
        error_class="WorkerLost",
        error_message=why or f"lease of worker {job.worker} expired",
    )
    if job.charged >= job.max_attempts:
        record.status = JobStatus.FAILED
        record.run_at = None
        record.reason = f"worker lost; attempts exhausted ({job.charged})"
    return record


def internal_error(job: ClaimedJob, error: Exception) -> Record:
    """Return a dead-letter record for a job django-bgjobs itself failed on."""
    return Record(
        job=job,
        status=JobStatus.FAILED,
        outcome=AttemptOutcome.FAILED,
        finished_at=timezone.now(),
        error_class=error_class(error),
        error_message=clean_text(str(error)),
        traceback=clean_text(traceback.format_exc()),
        reason=clean_text(
            f"django-bgjobs internal error: {error_class(error)}: {error}"
        ),
    )


def refused(record: Record, error: Exception) -> Record:
    """Return a dead-letter record for an outcome the database would not store.

    Not an outage (that is retried) but a value the database refuses; the job
    gives up rather than block the recording of every other job.
    """
    text = clean_text(f"{error_class(error)}: {error}")
    return Record(
        job=record.job,
        status=JobStatus.FAILED,
        outcome=AttemptOutcome.FAILED,
        finished_at=record.finished_at,
        error_class=error_class(error),
        error_message=clean_text(str(error)),
        reason=f"the database refused this job's {record.outcome} outcome: {text}",
    )
