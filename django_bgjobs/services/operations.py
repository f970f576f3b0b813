"""Operator actions on jobs and dead letters: retry, cancel, requeue.

Each takes ids or a QuerySet and works in one transaction with conditional
UPDATEs, so an action never overwrites a job a worker moved meanwhile (a
cancel of a job that has just been claimed changes nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from django.db import router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .. import registry
from ..conf import get_settings
from ..exceptions import TaskNotRegistered
from ..models import DeadLetter, Job
from ..signals import job_enqueued
from ..status import FINISHED, JobStatus

Selection = QuerySet[Any] | Iterable[int]


@dataclasses.dataclass
class ActionResult:
    """What an action did: rows changed, new jobs, and rows it left alone."""

    changed: int = 0
    created: list[Job] = dataclasses.field(default_factory=list)
    skipped: int = 0


def _ids(selection: Selection) -> list[int]:
    if isinstance(selection, QuerySet):
        return list(selection.values_list("pk", flat=True))
    return [int(pk) for pk in selection]


def retry_jobs(selection: Selection) -> ActionResult:
    """Run the selected jobs as soon as possible.

    A job waiting for its run time becomes ready now. A finished job (failed,
    cancelled or succeeded) is run again as a new job with the same task,
    arguments and options, and its pending dead letters are marked requeued.
    Running jobs are left alone (skipped).
    """
    ids = _ids(selection)
    using = router.db_for_write(Job)
    now = timezone.now()
    result = ActionResult()
    with transaction.atomic(using=using):
        jobs = Job.objects.using(using)
        result.changed = jobs.filter(
            id__in=ids, status__in=(JobStatus.SCHEDULED, JobStatus.READY)
        ).update(status=JobStatus.READY, run_at=now)
        finished = list(jobs.filter(id__in=ids, status__in=FINISHED))
        copies = [_copy(job, now) for job in finished]
        result.created = _insert(copies, using)
        copy_of = {
            job.id: copy for job, copy in zip(finished, result.created, strict=True)
        }
        letters = list(
            DeadLetter.objects.using(using).filter(
                job_id__in=list(copy_of), requeued_at__isnull=True
            )
        )
        for letter in letters:
            letter.requeued_at = now
            letter.requeued_job = copy_of[letter.job_id]
        DeadLetter.objects.using(using).bulk_update(
            letters, ["requeued_at", "requeued_job"]
        )
    result.skipped = len(ids) - result.changed - len(result.created)
    return result


def cancel_jobs(selection: Selection) -> ActionResult:
    """Cancel selected jobs that have not started; running jobs are skipped."""
    ids = _ids(selection)
    using = router.db_for_write(Job)
    changed = (
        Job.objects.using(using)
        .filter(
            id__in=ids,
            status__in=(
                JobStatus.SCHEDULED,
                JobStatus.READY,
                JobStatus.WAITING_CHILDREN,
            ),
        )
        .update(
            status=JobStatus.CANCELLED,
            active_key=None,
            finished_at=timezone.now(),
            error="cancelled by an operator",
        )
    )
    return ActionResult(changed=changed, skipped=len(ids) - changed)


def requeue_dead_letters(selection: Selection) -> ActionResult:
    """Enqueue a new job from each selected dead letter not requeued yet.

    The new job gets a fresh attempt budget; the dead letter keeps its
    history and points at the new job. A dead letter whose key is held by an
    unfinished job is skipped.
    """
    ids = _ids(selection)
    using = router.db_for_write(DeadLetter)
    now = timezone.now()
    result = ActionResult()
    with transaction.atomic(using=using):
        letters = list(
            DeadLetter.objects.using(using)
            .select_for_update()
            .filter(id__in=ids, requeued_at__isnull=True)
            .order_by("id")
        )
        held = set(
            Job.objects.using(using)
            .filter(active_key__in=[d.key for d in letters if d.key])
            .values_list("active_key", flat=True)
        )
        letters = [d for d in letters if not d.key or d.key not in held]
        jobs = _insert([_from_dead_letter(d, now) for d in letters], using)
        for letter, job in zip(letters, jobs, strict=True):
            letter.requeued_at = now
            letter.requeued_job = job
        DeadLetter.objects.using(using).bulk_update(
            letters, ["requeued_at", "requeued_job"]
        )
    result.created = jobs
    result.changed = len(jobs)
    result.skipped = len(ids) - len(jobs)
    return result


def _options(task: str) -> dict[str, Any]:
    conf = get_settings()
    try:
        o = registry.get(task).options
    except TaskNotRegistered:
        return {"max_attempts": conf.DEFAULT_ATTEMPTS}
    return {
        "max_attempts": o.attempts or conf.DEFAULT_ATTEMPTS,
        "timeout": o.timeout if o.timeout is not None else conf.DEFAULT_TIMEOUT,
        "result_ttl": o.result_ttl if o.result_ttl is not None else conf.RESULT_TTL,
    }


def _copy(job: Job, now: Any) -> Job:
    return Job(
        task=job.task,
        queue=job.queue,
        priority=job.priority,
        status=JobStatus.READY,
        args=job.args,
        kwargs=job.kwargs,
        key=job.key,
        active_key=job.key,
        run_at=now,
        created_at=now,
        max_attempts=job.max_attempts,
        timeout=job.timeout,
        result_ttl=job.result_ttl,
    )


def _from_dead_letter(letter: DeadLetter, now: Any) -> Job:
    return Job(
        task=letter.task,
        queue=letter.queue,
        priority=letter.priority,
        status=JobStatus.READY,
        args=letter.args,
        kwargs=letter.kwargs,
        key=letter.key,
        active_key=letter.key,
        run_at=now,
        created_at=now,
        **_options(letter.task),
    )


def _insert(jobs: list[Job], using: str) -> list[Job]:
    if not jobs:
        return []
    created = Job.objects.using(using).bulk_create(jobs)
    if job_enqueued.has_listeners():

        def send() -> None:
            for job in created:
                job_enqueued.send(job.task, job_id=job.id, queue=job.queue)

        transaction.on_commit(send, using=using)
    return created
