"""Operator actions on jobs and dead letters: retry, cancel, requeue.

Each works in one transaction per chunk of ids with conditional UPDATEs, so an
action never overwrites a job a worker moved meanwhile (a cancel of a job
that has just been claimed changes nothing). New jobs never collide on an
idempotency key: a row whose key an unfinished job holds is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .. import registry
from ..conf import get_settings
from ..exceptions import TaskNotRegistered
from ..models import DeadLetter, Job
from ..signals import job_enqueued
from ..status import FINISHED, JobStatus

Selection = QuerySet[Any] | Iterable[int]
CHUNK = 1000


@dataclasses.dataclass
class ActionResult:
    """What an action did: rows changed, new jobs, and rows it left alone."""

    changed: int = 0
    created: list[Job] = dataclasses.field(default_factory=list)
    skipped: int = 0
    #: Running jobs asked to stop (``cancel_jobs``).
    requested: int = 0

    def add(self, other: ActionResult) -> None:
        self.changed += other.changed
        self.created += other.created
        self.skipped += other.skipped
        self.requested += other.requested


def _chunks(selection: Selection) -> Iterator[list[int]]:
    if isinstance(selection, QuerySet):
        selection = selection.values_list("pk", flat=True).iterator(chunk_size=CHUNK)
    chunk: list[int] = []
    for pk in selection:
        chunk.append(int(pk))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _per_chunk(
    selection: Selection, action: Callable[[list[int], str], ActionResult]
) -> ActionResult:
    using = router.db_for_write(Job)
    total = ActionResult()
    # Read all ids first: the action changes the rows the selection filters on.
    for ids in list(_chunks(selection)):
        with transaction.atomic(using=using):
            total.add(action(ids, using))
    return total


def retry_jobs(selection: Selection) -> ActionResult:
    """Run the selected jobs as soon as possible.

    A job waiting for its run time becomes ready now. A finished job (failed,
    cancelled or succeeded) is run again as a new job with the same task,
    arguments and options, and its pending dead letters are marked requeued.
    Running jobs, and finished jobs whose key an unfinished job holds, are
    skipped.
    """
    return _per_chunk(selection, _retry_chunk)


def _retry_chunk(ids: list[int], using: str) -> ActionResult:
    now = timezone.now()
    jobs = Job.objects.using(using)
    result = ActionResult()
    result.changed = jobs.filter(
        id__in=ids, status__in=(JobStatus.SCHEDULED, JobStatus.READY)
    ).update(status=JobStatus.READY, run_at=now)
    finished = _without_held_keys(
        list(jobs.filter(id__in=ids, status__in=FINISHED)), using
    )
    copies = _insert([_copy(job, now) for job in finished], using)
    copy_of = {job.id: copy for job, copy in zip(finished, copies, strict=True) if copy}
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
    result.created = list(copy_of.values())
    result.skipped = len(ids) - result.changed - len(result.created)
    return result


def cancel_jobs(selection: Selection) -> ActionResult:
    """Cancel the selected jobs.

    A job that has not started is cancelled at once (``changed``). A running
    job is asked to stop (``requested``): its ``cancel_requested_at`` is set,
    its worker's next heartbeat flags it to the job code
    (``current_job().is_cancelled()``), and the run ends ``cancelled``
    unless it succeeds. A job asked before is not counted again. Finished
    jobs are skipped.
    """
    return _per_chunk(selection, _cancel_chunk)


def _cancel_chunk(ids: list[int], using: str) -> ActionResult:
    now = timezone.now()
    jobs = Job.objects.using(using)
    waiting = (JobStatus.SCHEDULED, JobStatus.READY, JobStatus.WAITING_CHILDREN)
    changed = jobs.filter(id__in=ids, status__in=waiting).update(
        status=JobStatus.CANCELLED,
        active_key=None,
        finished_at=now,
        error="cancelled by an operator",
    )
    requested = jobs.filter(
        id__in=ids, status=JobStatus.RUNNING, cancel_requested_at__isnull=True
    ).update(cancel_requested_at=now)
    return ActionResult(
        changed=changed, requested=requested, skipped=len(ids) - changed - requested
    )


def requeue_dead_letters(selection: Selection) -> ActionResult:
    """Enqueue a new job from each selected dead letter not requeued yet.

    The new job gets a fresh attempt budget; the dead letter keeps its
    history and points at the new job. A dead letter whose key an unfinished
    job holds (or an earlier dead letter of the same selection) is skipped.
    """
    return _per_chunk(selection, _requeue_chunk)


def _requeue_chunk(ids: list[int], using: str) -> ActionResult:
    now = timezone.now()
    letters = list(
        DeadLetter.objects.using(using)
        .select_for_update()
        .filter(id__in=ids, requeued_at__isnull=True)
        .order_by("id")
    )
    letters = _without_held_keys(letters, using)
    jobs = _insert([_from_dead_letter(d, now) for d in letters], using)
    done = []
    for letter, job in zip(letters, jobs, strict=True):
        if job is not None:
            letter.requeued_at = now
            letter.requeued_job = job
            done.append(letter)
    DeadLetter.objects.using(using).bulk_update(done, ["requeued_at", "requeued_job"])
    created = [job for job in jobs if job is not None]
    return ActionResult(
        changed=len(created), created=created, skipped=len(ids) - len(created)
    )


def _without_held_keys(rows: list[Any], using: str) -> list[Any]:
    """Drop rows whose key an unfinished job holds, and repeats of one key."""
    keys = [row.key for row in rows if row.key]
    held = set(
        Job.objects.using(using)
        .filter(active_key__in=keys)
        .values_list("active_key", flat=True)
    )
    kept = []
    for row in rows:
        if row.key:
            if row.key in held:
                continue
            held.add(row.key)
        kept.append(row)
    return kept


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


def _new_job(source: Job | DeadLetter, now: Any, **options: Any) -> Job:
    """Return an unsaved ready job with the task and payload of ``source``."""
    return Job(
        task=source.task,
        queue=source.queue,
        priority=source.priority,
        status=JobStatus.READY,
        args=source.args,
        kwargs=source.kwargs,
        key=source.key,
        active_key=source.key,
        run_at=now,
        created_at=now,
        **options,
    )


def _copy(job: Job, now: Any) -> Job:
    return _new_job(
        job,
        now,
        max_attempts=job.max_attempts,
        timeout=job.timeout,
        result_ttl=job.result_ttl,
    )


def _from_dead_letter(letter: DeadLetter, now: Any) -> Job:
    return _new_job(letter, now, **_options(letter.task))


def _insert(jobs: list[Job], using: str) -> list[Job | None]:
    """Insert ``jobs``; return them in order, None where a key was taken.

    One INSERT normally; if a concurrent enqueue took a key since the check,
    the rows go in one by one and the ones that collide are skipped.
    """
    if not jobs:
        return []
    manager = Job.objects.using(using)
    inserted: list[Job | None]
    try:
        with transaction.atomic(using=using):
            inserted = list(manager.bulk_create(jobs))
    except IntegrityError:
        inserted = []
        for job in jobs:
            job.pk = None
            try:
                with transaction.atomic(using=using):
                    job.save(using=using, force_insert=True)
            except IntegrityError:
                inserted.append(None)
            else:
                inserted.append(job)
    created = [job for job in inserted if job is not None]
    if created and job_enqueued.has_listeners():

        def send() -> None:
            for job in created:
                job_enqueued.send(job.task, job_id=job.id, queue=job.queue)

        transaction.on_commit(send, using=using)
    return inserted
