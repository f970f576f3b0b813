"""``@background``: turns a function into a ``JobSpec`` that enqueues calls.

Options are resolved in one order: ``BGJOBS`` settings, then the decorator's
options, then ``.using(...)`` for one enqueue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from asgiref.sync import iscoroutinefunction

from . import registry
from .conf import QUEUE_NAME, get_settings
from .exceptions import BgJobsImproperlyConfigured, InvalidJob
from .retention import parse_retention
from .retry import BackoffFunction, RetryPolicy, make_backoff

if TYPE_CHECKING:
    from .declarations import Declaration
    from .enqueue import JobHandle

P = ParamSpec("P")
R = TypeVar("R")
KeyFunction = Callable[..., str]


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """Per-task and per-enqueue options; ``None`` means "inherit"."""

    queue: str | None = None
    priority: int | None = None
    attempts: int | None = None
    backoff: str | BackoffFunction | None = None
    backoff_delay: float | None = None
    backoff_max: float | None = None
    jitter: bool | None = None
    retry_on: tuple[type[BaseException], ...] | None = None
    dont_retry_on: tuple[type[BaseException], ...] | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    key: str | KeyFunction | None = None
    limit_key: str | KeyFunction | None = None
    remove_on_complete: bool | int | dict[str, float] | None = None
    remove_on_fail: bool | int | dict[str, float] | None = None
    delay: float | dt.timedelta | None = None
    run_at: dt.datetime | None = None
    atomic: bool | None = None

    def validate(self) -> None:
        """Raise ``InvalidJob`` naming the first option out of range."""
        if self.queue is not None and not QUEUE_NAME.fullmatch(self.queue):
            raise InvalidJob(
                f"Invalid queue name {self.queue!r}: use 1-100 letters, digits, "
                "'_', '-', '.' or ':'."
            )
        if self.priority is not None and (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or not -100 <= self.priority <= 100
        ):
            raise InvalidJob(
                f"priority must be an integer from -100 to 100, got {self.priority!r}."
            )
        self._validate_numbers()
        self._validate_times()
        if self.backoff is not None:
            try:
                make_backoff(self.backoff, 1.0, 1.0)
            except ValueError as error:
                raise InvalidJob(str(error)) from None
        if self.atomic is not None and not isinstance(self.atomic, bool):
            raise InvalidJob(f"atomic must be True or False, got {self.atomic!r}.")
        self._validate_keys()
        self._validate_retention()

    def _validate_keys(self) -> None:
        for field in ("key", "limit_key"):
            value = getattr(self, field)
            if value is None or callable(value):
                continue
            if not isinstance(value, str):
                raise InvalidJob(
                    f"{field} must be a str or a function of the job's arguments, "
                    f"got {type(value).__name__} {value!r}."
                )
            if not 0 < len(value) <= 255:
                raise InvalidJob(f"{field} must be 1-255 characters, got {len(value)}.")

    def _validate_retention(self) -> None:
        for field in ("remove_on_complete", "remove_on_fail"):
            try:
                parse_retention(getattr(self, field), field)
            except BgJobsImproperlyConfigured as error:
                raise InvalidJob(str(error)) from None

    def _validate_numbers(self) -> None:
        if self.attempts is not None and (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int)
            or self.attempts < 1
        ):
            raise InvalidJob(
                f"attempts must be an integer >= 1, got {self.attempts!r}."
            )
        for field in ("timeout", "result_ttl", "backoff_delay", "backoff_max"):
            value = getattr(self, field)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or value <= 0
            ):
                raise InvalidJob(f"{field} must be a number > 0, got {value!r}.")

    def _validate_times(self) -> None:
        if self.delay is not None:
            seconds = (
                self.delay.total_seconds()
                if isinstance(self.delay, dt.timedelta)
                else self.delay
            )
            if not isinstance(seconds, int | float) or seconds < 0:
                raise InvalidJob(
                    f"delay must be seconds or a timedelta >= 0, got {self.delay!r}."
                )
        if self.run_at is not None and (
            not isinstance(self.run_at, dt.datetime) or self.run_at.tzinfo is None
        ):
            raise InvalidJob(f"run_at must be an aware datetime, got {self.run_at!r}.")

    def merged(self, **changes: Any) -> JobOptions:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Unknown job option(s): {', '.join(sorted(unknown))}.")
        return dataclasses.replace(
            self, **{k: v for k, v in changes.items() if v is not None}
        )


class JobSpec(Generic[P, R]):
    """A function declared as a background job.

    Call it to run it inline; ``enqueue`` to run it on a worker.
    """

    #: How the task was declared, as the admin shows it.
    declared_by = "@background"

    #: The schedule of ``@background(cron=...)`` or ``(interval=...)``.
    schedule: Declaration | None = None

    def __init__(self, func: Callable[P, R], name: str, options: JobOptions) -> None:
        self.func = func
        self.name = name
        self.options = options
        #: True for a coroutine function: the worker runs it on its event
        #: loop, many at once, instead of on one of its threads.
        self.is_async = iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<JobSpec {self.name}>"

    def using(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        key: str | None = None,
        limit_key: str | None = None,
        attempts: int | None = None,
        timeout: float | None = None,
    ) -> JobSpec[P, R]:
        """Return a copy of this spec with options for the next enqueues.

        Raise ``InvalidJob`` at enqueue time if an option is out of range.
        """
        options = self.options.merged(
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=run_at,
            key=key,
            limit_key=limit_key,
            attempts=attempts,
            timeout=timeout,
        )
        return JobSpec(self.func, self.name, options)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Insert a job that calls this function with these arguments.

        The insert joins the caller's transaction. Return a handle. Raise
        ``InvalidPayload`` (a ``TypeError``) if an argument is not JSON,
        ``PayloadTooLarge`` past the size limit, ``InvalidJob`` for a bad
        option.
        """
        from .enqueue import enqueue

        return enqueue(self, args, kwargs)

    def enqueue_many(
        self, items: Iterable[tuple[Iterable[Any], dict[str, Any]]]
    ) -> list[JobHandle]:
        """Insert one job per ``(args, kwargs)`` item in a single statement.

        Return the handles in item order; if any item is bad, write nothing.
        """
        from .enqueue import enqueue_many

        return enqueue_many(self, items)

    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy of this spec, with settings as defaults."""
        conf = get_settings()
        o = self.options
        backoff = make_backoff(
            o.backoff if o.backoff is not None else conf.DEFAULT_BACKOFF,
            o.backoff_delay if o.backoff_delay is not None else conf.BACKOFF_DELAY,
            o.backoff_max if o.backoff_max is not None else conf.BACKOFF_MAX,
        )
        return RetryPolicy(
            attempts=o.attempts or conf.DEFAULT_ATTEMPTS,
            backoff=backoff,
            jitter=conf.BACKOFF_JITTER if o.jitter is None else o.jitter,
            retry_on=o.retry_on or (Exception,),
            dont_retry_on=o.dont_retry_on or (),
        )


@overload
def background(func: Callable[P, R], /) -> JobSpec[P, R]: ...


@overload
def background(
    *,
    name: str | None = ...,
    queue: str | None = ...,
    priority: int | None = ...,
    attempts: int | None = ...,
    backoff: str | BackoffFunction | None = ...,
    backoff_delay: float | None = ...,
    backoff_max: float | None = ...,
    jitter: bool | None = ...,
    retry_on: tuple[type[BaseException], ...] | None = ...,
    dont_retry_on: tuple[type[BaseException], ...] | None = ...,
    timeout: float | None = ...,
    result_ttl: float | None = ...,
    key: str | KeyFunction | None = ...,
    limit_key: str | KeyFunction | None = ...,
    remove_on_complete: bool | int | dict[str, float] | None = ...,
    remove_on_fail: bool | int | dict[str, float] | None = ...,
    atomic: bool | None = ...,
    cron: str | None = ...,
    interval: float | dt.timedelta | None = ...,
    tz: str | None = ...,
    misfire: str | None = ...,
) -> Callable[[Callable[P, R]], JobSpec[P, R]]: ...


def background(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    cron: str | None = None,
    interval: float | dt.timedelta | None = None,
    tz: str | None = None,
    misfire: str | None = None,
    **options: Any,
) -> Any:
    """Declare a function as a background job; use bare or with options.

    Options: ``queue``, ``priority`` (-100..100, higher first), ``attempts``,
    ``backoff`` ('fixed', 'exponential' or a callable of the attempt number),
    ``backoff_delay``, ``backoff_max``, ``jitter``, ``retry_on``,
    ``dont_retry_on``, ``timeout`` (seconds), ``result_ttl`` (seconds to keep
    the finished row), ``key`` (an idempotency key, or a callable that builds
    one from the arguments), ``limit_key`` (the key that the per-key rate
    and concurrency limits of the job's queue count it under, or a callable
    that builds it from the arguments), ``remove_on_complete`` and
    ``remove_on_fail`` (how long its finished rows are kept: True, False, a
    count of newest rows, or ``{"age": seconds, "count": n}``; see
    ``django_bgjobs.retention``), ``atomic`` (run the job in a database
    transaction that also records its success, so that its database writes
    commit if and only if the job is recorded as succeeded; not for an
    ``async def`` function, which the worker runs on its event loop). Raise
    ``ImproperlyConfigured`` if the name is
    taken by another function, ``InvalidJob`` if an option is out of range.

    ``cron`` (a croniter expression) or ``interval`` (seconds or a
    timedelta) also declares a schedule named after the task, in zone ``tz``
    (default ``settings.TIME_ZONE``) with misfire policy ``misfire`` (skip,
    all or none); workers sync it to a ``Schedule`` row at start. A bad
    schedule is reported by the system checks ``bgjobs.E010``-``E015``.
    """

    def decorate(function: Callable[..., Any]) -> JobSpec[Any, Any]:
        job_options = JobOptions().merged(**options)
        job_options.validate()
        if job_options.atomic and iscoroutinefunction(function):
            raise InvalidJob(
                f"{function.__qualname__} is an async def function: atomic=True "
                "needs a synchronous one, as transaction.atomic() does."
            )
        task_name = name or f"{function.__module__}.{function.__qualname__}"
        spec: JobSpec[Any, Any] = JobSpec(function, task_name, job_options)
        if cron is not None or interval is not None:
            spec.schedule = _declaration(task_name, cron, interval, tz, misfire)
        registry.register(spec)
        return spec

    return decorate(func) if func is not None else decorate


def _declaration(
    task: str,
    cron: str | None,
    interval: float | dt.timedelta | None,
    tz: str | None,
    misfire: str | None,
) -> Declaration:
    # Checked by the system checks, not here: a bad expression in an
    # imported module must not stop the whole project from starting.
    from .declarations import Declaration

    return Declaration(
        name=task,
        task=task,
        cron=cron or "",
        interval=interval,
        tz=tz,
        misfire=misfire or "skip",
    )
