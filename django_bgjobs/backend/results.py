"""A job row and its attempts, seen as a Django ``TaskResult``.

Statuses map as ``status.to_task_result_status`` says. ``worker_ids`` has one
entry per run (one ``Attempt`` row each, plus the run in progress), so
``TaskResult.attempts`` and ``TaskContext.attempt`` count every run;
``errors`` has one ``TaskError`` per run that raised, failed by timeout or
was cancelled while running.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError

from ..models import Attempt, Job
from ..status import AttemptOutcome, JobStatus, to_task_result_status

#: Outcomes of runs that Django counts as errors of the task. A lost worker,
#: a shutdown and a snooze are not errors the task raised.
ERROR_OUTCOMES = (
    AttemptOutcome.FAILED,
    AttemptOutcome.TIMED_OUT,
    AttemptOutcome.CANCELLED,
)
#: Error classes that the worker records by bare name, and their paths.
INTERNAL_ERRORS = {
    "JobTimeout": "django_bgjobs.worker.executor.JobTimeout",
    "JobCancelled": "django_bgjobs.exceptions.JobCancelled",
}
ATTEMPT_FIELDS = (
    "number",
    "worker",
    "started_at",
    "outcome",
    "error_class",
    "error_message",
    "traceback",
)


def exception_class_path(error_class: str) -> str:
    """Return the importable path of an error class as ``Attempt`` stores it
    (builtins by bare name: ``ValueError`` -> ``builtins.ValueError``)."""
    if "." in error_class:
        return error_class
    if error_class in INTERNAL_ERRORS:
        return INTERNAL_ERRORS[error_class]
    found = getattr(builtins, error_class, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return f"builtins.{error_class}"
    return error_class


def task_error(attempt: Attempt) -> TaskError:
    """Return the ``TaskError`` of one failed run; a run killed at its
    timeout has no traceback, so its error line stands in."""
    text = attempt.traceback or f"{attempt.error_class}: {attempt.error_message}\n"
    return TaskError(
        exception_class_path=exception_class_path(attempt.error_class),
        traceback=text,
    )


def attempts_of(job_id: int, using: str | None = None) -> list[Attempt]:
    """Return the recorded runs of a job, in order: one query."""
    rows = Attempt.objects.using(using) if using else Attempt.objects
    return list(rows.filter(job_id=job_id).only(*ATTEMPT_FIELDS).order_by("number"))


def to_result(
    task: Task[..., Any], job: Job, attempts: Sequence[Attempt], **changes: Any
) -> TaskResult[..., Any]:
    """Return the ``TaskResult`` of ``job`` (``changes`` override fields)."""
    worker_ids = [attempt.worker for attempt in attempts]
    if job.status == JobStatus.RUNNING:
        # The run in progress has no Attempt row until its outcome is recorded.
        worker_ids.append(job.worker)
    status = TaskResultStatus[to_task_result_status(job.status)]
    fields: dict[str, Any] = {
        "task": task,
        "id": str(job.pk),
        "status": status,
        "enqueued_at": job.created_at,
        "started_at": attempts[0].started_at if attempts else job.started_at,
        "finished_at": job.finished_at if task_finished(status) else None,
        "last_attempted_at": job.started_at,
        "args": job.args,
        "kwargs": job.kwargs,
        "backend": task.backend,
        "errors": [task_error(a) for a in attempts if a.outcome in ERROR_OUTCOMES],
        "worker_ids": worker_ids,
    }
    fields.update(changes)
    result: TaskResult[..., Any] = TaskResult(**fields)
    if result.status == TaskResultStatus.SUCCESSFUL:
        # A private field with no constructor argument: Django's own
        # backends set it the same way.
        object.__setattr__(result, "_return_value", job.result)
    return result


def task_finished(status: TaskResultStatus) -> bool:
    return status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
