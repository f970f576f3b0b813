"""Read-side figures shared by the admin, the API and the metrics."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..conf import get_settings
from ..models import Attempt, DeadLetter, Job, QueueState, Worker, WorkerStatus
from ..status import CLAIMABLE, FINISHED, JobStatus


def counts_by_queue() -> dict[str, dict[str, int]]:
    """Return ``{queue: {status: count}}`` over all jobs, one query."""
    rows = Job.objects.values("queue", "status").annotate(n=Count("id"))
    counts: dict[str, dict[str, int]] = {}
    for row in rows.order_by():
        counts.setdefault(row["queue"], {})[row["status"]] = row["n"]
    return counts


def pending_dead_letters() -> Any:
    """Return dead letters not requeued yet, newest first."""
    return DeadLetter.objects.filter(requeued_at__isnull=True)


def queue_names() -> list[str]:
    """Return the names of the queues that hold jobs, sorted; one query.

    The ``(queue, status)`` index covers it.
    """
    rows = Job.objects.order_by("queue").values_list("queue", flat=True)
    return list(rows.distinct())


def task_names() -> list[str]:
    """Return the task names that have jobs, sorted; one query on an index."""
    rows = Job.objects.order_by("task").values_list("task", flat=True)
    return list(rows.distinct())


def dead_letter_error_classes() -> list[str]:
    """Return the error classes found in dead letters, sorted; one query."""
    rows = (
        DeadLetter.objects.exclude(error_class="")
        .order_by("error_class")
        .values_list("error_class", flat=True)
    )
    return list(rows.distinct())


def dead_letter_task_names() -> list[str]:
    """Return the task names found in dead letters, sorted; one query."""
    rows = DeadLetter.objects.order_by("task").values_list("task", flat=True)
    return list(rows.distinct())


def last_traceback(job_id: int) -> Attempt | None:
    """Return the latest attempt of a job that left a traceback, or None."""
    return (
        Attempt.objects.filter(job_id=job_id)
        .exclude(traceback="")
        .only("job_id", "number", "error_class", "error_message", "traceback")
        .order_by("-number")
        .first()
    )


def dead_letters_of(job_id: int) -> list[DeadLetter]:
    """Return the dead letters written for a job, newest first."""
    rows = DeadLetter.objects.filter(job_id=job_id).only(
        "id", "job_id", "created_at", "requeued_at", "requeued_job_id"
    )
    return list(rows.order_by("-id"))


def workers(now: dt.datetime | None = None) -> QuerySet[Worker]:
    """Return worker rows with ``status`` and ``running_jobs`` annotated.

    A worker with no clean stop whose heartbeat is older than the lease is
    lost. One query however many rows: the job count is a subquery.
    """
    now = now or timezone.now()
    silent_since = now - dt.timedelta(seconds=get_settings().LEASE_SECONDS)
    running = (
        Job.objects.filter(worker=OuterRef("id"), status=JobStatus.RUNNING)
        .order_by()
        .values("worker")
        .annotate(n=Count("id"))
        .values("n")
    )
    status = Case(
        When(stopped_at__isnull=False, then=Value(WorkerStatus.STOPPED.value)),
        When(
            Q(lost_at__isnull=False) | Q(last_heartbeat_at__lt=silent_since),
            then=Value(WorkerStatus.LOST.value),
        ),
        default=Value(WorkerStatus.RUNNING.value),
        output_field=CharField(),
    )
    return Worker.objects.annotate(
        status=status,
        running_jobs=Coalesce(Subquery(running, output_field=IntegerField()), Value(0)),
    )


@dataclasses.dataclass
class QueueOverview:
    """One queue as the admin and the ``bgjobs queues`` command show it."""

    name: str
    paused_at: dt.datetime | None = None
    paused_by: str = ""
    #: Jobs per status; every ``JobStatus`` value is a key.
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(JobStatus.values, 0)
    )
    #: Seconds the longest-waiting due job has waited (from its ``run_at``),
    #: or None when no job is due.
    oldest_ready_age: float | None = None
    #: The limits and retention declared in ``BGJOBS["QUEUES"]``, as one line
    #: (``QueueLimits.describe()``); empty when the queue declares none.
    limits: str = ""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def finished(self) -> int:
        return sum(self.counts[status] for status in FINISHED)


def queue_overview(now: dt.datetime | None = None) -> list[QueueOverview]:
    """Return every queue that has jobs, a state row or an entry in
    ``BGJOBS["QUEUES"]``, sorted by name, with its paused state, its job
    counts by status, the age of its oldest due job and its declared limits.
    Three queries whatever the number of queues: counts (on the ``(queue,
    status)`` index), oldest due job (on the claimable index), and the state
    rows; the limits come from the settings."""
    now = now or timezone.now()
    queues: dict[str, QueueOverview] = {}

    def of(name: str) -> QueueOverview:
        return queues.setdefault(name, QueueOverview(name))

    for name, limits in get_settings().QUEUES.items():
        of(name).limits = limits.describe()
    counts = Job.objects.values("queue", "status").annotate(n=Count("id"))
    for row in counts.order_by():
        of(row["queue"]).counts[row["status"]] = row["n"]
    oldest = (
        Job.objects.filter(status__in=CLAIMABLE, run_at__lte=now)
        .values("queue")
        .annotate(first=Min("run_at"))
    )
    for queue, first in oldest.order_by().values_list("queue", "first"):
        of(queue).oldest_ready_age = (now - first).total_seconds()
    for state in QueueState.objects.all():
        overview = of(state.name)
        overview.paused_at, overview.paused_by = state.paused_at, state.paused_by
    return [queues[name] for name in sorted(queues)]
