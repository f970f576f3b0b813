"""``BgJobsBackend``: Django's ``django.tasks`` contract on django-bgjobs.

A ``Task`` bound to this backend is registered (as a ``TaskSpec``) when
Django validates it, which ``@task`` does as the task module is imported; a
worker runs only registered tasks. ``enqueue`` goes through
``django_bgjobs.enqueue``: one INSERT in the caller's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, ParamSpec, TypeVar, cast

from django.conf import settings
from django.core import checks
from django.db import router, transaction
from django.tasks import Task, TaskResult, task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils.module_loading import import_string

from .. import registry
from ..decorators import JobOptions
from ..enqueue import enqueue
from ..exceptions import BgJobsImproperlyConfigured, TaskNotRegistered
from ..models import Job
from .options import check_queues, parse_options
from .results import attempts_of, to_result
from .runner import TaskSpec, task_name

P = ParamSpec("P")
R = TypeVar("R")


class BgJobsBackend(BaseTaskBackend):
    """Run ``django.tasks`` tasks on django-bgjobs workers.

    ``OPTIONS`` give every task of the backend the ``@background`` options
    named in ``options.ALLOWED``; ``QUEUES`` lists the queues a task may use.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        queues = params.get("QUEUES", ["default"])
        #: What is wrong with the configuration: reported by ``check()`` as
        #: bgjobs.E020 and E022, raised by ``enqueue``.
        self.problems = [("bgjobs.E022", p) for p in check_queues(alias, queues)]
        if self.problems:
            params = {key: value for key, value in params.items() if key != "QUEUES"}
        super().__init__(alias, params)
        self.job_options: JobOptions | None = None
        try:
            self.job_options = parse_options(alias, params.get("OPTIONS", {}))
        except BgJobsImproperlyConfigured as error:
            self.problems.append(("bgjobs.E020", str(error)))

    def validate_task(self, task: Task[..., Any]) -> None:
        """Check ``task`` as Django does, then register it with every
        django-bgjobs backend alias, so workers can run it.

        Raise ``InvalidTask`` if Django's rules refuse it.
        """
        super().validate_task(task)
        for alias, backend in our_backends():
            if backend.job_options is not None:
                _register(task, alias, backend.job_options)

    def enqueue(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """Insert a job for ``task`` in the caller's transaction; return its
        ``TaskResult`` (READY).

        Raise ``InvalidTask`` for a task Django refuses, ``InvalidPayload``
        (a ``TypeError``) for arguments that are not JSON,
        ``ImproperlyConfigured`` if the backend's settings are invalid.
        """
        self.validate_task(task)
        if self.job_options is None or self.problems:
            raise BgJobsImproperlyConfigured(self.problems[0][1])
        spec = self._spec(task_name(task.func, self.alias))
        call = spec.using(
            queue=task.queue_name, priority=task.priority, run_at=task.run_after
        )
        using = router.db_for_write(Job)
        # Like job_enqueued: the job exists for others once the caller
        # commits. Registered before the INSERT, so that at commit it comes
        # before what enqueue registers (an inline run, in tests).
        enqueued: list[TaskResult[P, R]] = []
        in_transaction = transaction.get_connection(using).in_atomic_block
        if in_transaction:
            transaction.on_commit(
                functools.partial(self._enqueued, enqueued), using=using
            )
        handle = enqueue(call, args, kwargs)
        if not handle.created:
            # The idempotency key is held by an unfinished job: that job.
            return cast("TaskResult[P, R]", self._result(handle.job))
        enqueued.append(cast("TaskResult[P, R]", to_result(task, handle.job, [])))
        if not in_transaction:
            self._enqueued(enqueued)
        return enqueued[0]

    def _enqueued(self, results: list[TaskResult[P, R]]) -> None:
        for result in results:
            task_enqueued.send(type(self), task_result=result)

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """Return the ``TaskResult`` of job ``result_id``.

        Raise ``TaskResultDoesNotExist`` if there is no such job, or if it is
        not a task of this backend.
        """
        text = str(result_id)
        job = None
        if text.isdigit() and len(text) < 19:
            job = Job.objects.filter(pk=int(text)).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return self._result(job)

    def _result(self, job: Job) -> TaskResult[..., Any]:
        spec = registry.find(job.task)
        if not isinstance(spec, TaskSpec) or spec.alias != self.alias:
            raise TaskResultDoesNotExist(
                f"{job.pk}: job {job.pk} runs {job.task!r}, which is not a task of "
                f"TASKS[{self.alias!r}] in this process"
            )
        task = spec.task(self.task_class, job)
        return to_result(task, job, attempts_of(job.pk))

    def _spec(self, name: str) -> TaskSpec:
        spec = registry.get(name)
        if not isinstance(spec, TaskSpec):  # pragma: no cover - names differ
            raise TaskNotRegistered(f"{name!r} is not a django.tasks task.")
        return spec

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report invalid ``OPTIONS`` (bgjobs.E020) and ``QUEUES`` (E022)."""
        return [
            checks.Error(message, id=check_id) for check_id, message in self.problems
        ]


def our_backends() -> Iterator[tuple[str, BgJobsBackend]]:
    """Yield ``(alias, backend)`` for each ``TASKS`` alias served by
    django-bgjobs."""
    for alias, params in getattr(settings, "TASKS", {}).items():
        try:
            backend_class = import_string(params.get("BACKEND", ""))
        except ImportError:
            continue  # Django reports it when the alias is used.
        if isinstance(backend_class, type) and issubclass(backend_class, BgJobsBackend):
            backend = task_backends[alias]
            if isinstance(backend, BgJobsBackend):
                yield alias, backend


def _register(task: Task[..., Any], alias: str, options: JobOptions) -> None:
    existing = registry.find(task_name(task.func, alias))
    if (
        isinstance(existing, TaskSpec)
        and existing.task_func is task.func
        and existing.takes_context == task.takes_context
        and existing.options == options
    ):
        return
    registry.register(
        TaskSpec(
            task.func, takes_context=task.takes_context, alias=alias, options=options
        )
    )
