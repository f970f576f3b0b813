"""What a worker runs for a ``django.tasks`` task: the registered ``TaskSpec``
whose function wraps the task's own.

The wrapper reads its job row (one query; two on a retry) to build the
running ``TaskResult``, sends ``task_started``, passes a ``TaskContext`` to a
``takes_context`` task, and sends ``task_finished`` once the task is done: on
success, or from inside the ``except`` block of a failure that will not be
retried, so that Django's log of it carries the traceback. The executor
records the outcome as for any job.
"""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.tasks import Task, TaskContext, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from .. import registry
from ..context import current_job
from ..decorators import JobOptions, JobSpec
from ..exceptions import InvalidPayload, JobCancelled, Permanent, Snooze
from ..models import Job
from ..payload import check_result
from .results import attempts_of, to_result


def task_name(func: Callable[..., Any], alias: str) -> str:
    """Return the registry name of a task function bound to backend
    ``alias``: its dotted path, with ``@alias`` unless it is ``default``."""
    path = f"{func.__module__}.{func.__qualname__}"
    return path if alias == "default" else f"{path}@{alias}"


class TaskSpec(JobSpec[..., Any]):
    """The registry entry of a ``django.tasks`` task for one backend alias."""

    declared_by = "django.tasks"

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        takes_context: bool,
        alias: str,
        options: JobOptions,
    ) -> None:
        self.task_func = func
        self.takes_context = takes_context
        self.alias = alias
        super().__init__(_runner(self), task_name(func, alias), options)
        self.declared_by = f"django.tasks (TASKS[{alias!r}])"

    def __repr__(self) -> str:
        return f"<TaskSpec {self.name}>"

    def task(self, task_class: type[Task[..., Any]], job: Job) -> Task[..., Any]:
        """Return the ``Task`` of ``job``: its queue and priority, and its
        ``run_after`` while it has not run yet and was deferred."""
        deferred = job.attempt == 0 and job.run_at > job.created_at
        return task_class(
            func=self.task_func,
            priority=job.priority,
            backend=self.alias,
            queue_name=job.queue,
            run_after=job.run_at if deferred else None,
            takes_context=self.takes_context,
        )


class _Run:
    """One run of a task on a worker: its ``TaskResult`` and the signals."""

    def __init__(self, spec: TaskSpec, job: Job) -> None:
        self.spec, self.job = spec, job
        attempts = attempts_of(job.pk) if job.attempt > 1 else []
        #: Django's backends send their signals with their class as sender.
        self.sender = _backend_class(spec.alias)
        task = spec.task(self.sender.task_class, job)
        self.result = to_result(task, job, attempts)

    def args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.spec.takes_context:
            return (TaskContext(task_result=self.result), *args)
        return args

    def started(self) -> None:
        task_started.send(self.sender, task_result=self.result)

    def succeeded(self, value: Any) -> None:
        self._finish(TaskResultStatus.SUCCESSFUL, value=value)

    def failed(self, error: BaseException) -> None:
        """Send ``task_finished`` if ``error`` ends the task; call it from the
        ``except`` block, where Django's log receiver reads the traceback."""
        if not self._final(error):
            return
        kind = type(error)
        errors = [
            *self.result.errors,
            TaskError(
                exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                traceback="".join(traceback.format_exception(error)),
            ),
        ]
        self._finish(TaskResultStatus.FAILED, errors=errors)

    def _final(self, error: BaseException) -> bool:
        # The executor's settle() decides the same from the same inputs. A
        # coroutine cancelled by the worker may be a timeout (retried or
        # not), an operator's cancel or a shutdown: only the worker knows.
        if isinstance(error, Snooze | asyncio.CancelledError):
            return False
        if isinstance(error, JobCancelled):
            return True
        job = self.job
        policy = registry.get(self.spec.name).retry_policy()
        retry_at = policy.next_run_at(
            charged=job.attempt - job.uncharged,
            error=error,
            now=timezone.now(),
            max_attempts=job.max_attempts,
        )
        return retry_at is None

    def _finish(
        self, status: TaskResultStatus, value: Any = None, **fields: Any
    ) -> None:
        result = self.result
        for name, new in {
            "status": status,
            "finished_at": timezone.now(),
            **fields,
        }.items():
            object.__setattr__(result, name, new)
        object.__setattr__(result, "_return_value", value)
        task_finished.send(self.sender, task_result=result)


def _backend_class(alias: str) -> Any:
    from django.tasks import task_backends

    return type(task_backends[alias])


def _start(spec: TaskSpec) -> _Run | None:
    """Return the run of the job this thread runs; None outside a worker."""
    job_id = current_job().id
    if job_id is None:
        return None
    return _Run(spec, Job.objects.get(pk=job_id))


def _json_value(value: Any) -> Any:
    """Return the task's return value as Django normalizes it; a value that
    is not JSON fails the task at once (running it again returns the same)."""
    try:
        value = normalize_json(value)
        check_result(value)
    except (TypeError, ValueError, InvalidPayload) as error:
        raise Permanent(f"the task's return value: {error}") from error
    return value


def _inline(spec: TaskSpec) -> TypeError:
    return TypeError(
        f"{spec.name} takes a TaskContext, which only a worker run provides; "
        "call the task through .enqueue(), or its function with a context."
    )


def _runner(spec: TaskSpec) -> Callable[..., Any]:
    func = spec.task_func
    if iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            run = await sync_to_async(_start)(spec)
            if run is None:
                if spec.takes_context:
                    raise _inline(spec)
                return await func(*args, **kwargs)
            run.started()
            try:
                value = _json_value(await func(*run.args(args), **kwargs))
            except BaseException as error:
                run.failed(error)
                raise
            run.succeeded(value)
            return value

        return run_async

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        current = _start(spec)
        if current is None:
            if spec.takes_context:
                raise _inline(spec)
            return func(*args, **kwargs)
        current.started()
        try:
            value = _json_value(func(*current.args(args), **kwargs))
        except BaseException as error:
            current.failed(error)
            raise
        current.succeeded(value)
        return value

    return run
