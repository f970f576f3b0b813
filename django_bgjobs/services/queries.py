"""Read-side figures shared by the admin, the API and the metrics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from django.db import connections
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

from .. import registry
from ..conf import get_settings
from ..models import Attempt, DeadLetter, Job, QueueState, Worker, WorkerStatus
from ..status import CLAIMABLE, FINISHED, UNFINISHED, JobStatus


def declared_by(task: str) -> str:
    """Return how ``task`` was declared (``@background``, or django.tasks
    and its ``TASKS`` alias), or why this process cannot run it."""
    spec = registry.find(task)
    if spec is None:
        return "not registered in this process"
    return spec.declared_by


def pending_dead_letters() -> Any:
    """Return dead letters not requeued yet, newest first."""
    return DeadLetter.objects.filter(requeued_at__isnull=True)


def queue_names() -> list[str]:
    """Return the names of the queues that hold jobs, sorted; one query.

    On PostgreSQL a skip scan of ``bgjobs_job_queue_status``: one index
    probe per queue, not a read of every row (see ``distinct_values``).
    """
    return distinct_values("queue")


def task_names() -> list[str]:
    """Return the task names that have jobs, sorted; one query on
    ``bgjobs_job_task`` (a skip scan on PostgreSQL)."""
    return distinct_values("task")


#: Columns of ``bgjobs_job`` that lead an index, so ``distinct_values`` can
#: skip from one value to the next.
SKIPPABLE = ("queue", "task")

#: A recursive "skip scan": each step asks the index for the smallest value
#: above the last one, so the cost is one index probe per distinct value,
#: whatever the number of rows. PostgreSQL (up to 17) has no skip scan of its
#: own: a DISTINCT or GROUP BY there reads every row.
SKIP_SCAN = """
WITH RECURSIVE found (value) AS (
    SELECT MIN({column}) FROM {table}
    UNION ALL
    SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value)
    FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL
"""


def distinct_values(column: str) -> list[str]:
    """Return the distinct values of a job column that leads an index
    (``queue`` or ``task``), sorted as the database sorts them; one query.

    PostgreSQL runs ``SKIP_SCAN``. MySQL and MariaDB read such a DISTINCT by
    a loose index scan of their own, and SQLite walks the index (it is not
    meant for tables of millions of jobs): they run the plain DISTINCT.
    """
    if column not in SKIPPABLE:
        raise ValueError(f"distinct_values: {column!r} is not one of {SKIPPABLE}")
    alias = Job.objects.db
    connection = connections[alias]
    if connection.vendor != "postgresql":
        rows = Job.objects.order_by(column).values_list(column, flat=True)
        return list(rows.distinct())
    qn = connection.ops.quote_name
    sql = SKIP_SCAN.format(column=qn(column), table=qn(Job._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [value for (value,) in cursor.fetchall()]


#: Above this many rows (by the planner's estimate), a list page shows the
#: estimate instead of counting the rows.
ESTIMATE_ABOVE = 100_000


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """Return the PostgreSQL planner's estimate of the rows of ``queryset``
    (the top row count of its ``EXPLAIN``, which scales ``pg_class.reltuples``
    to the table's current size and applies the filters' selectivity), or
    None on other databases. One ``EXPLAIN``, no row is read."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def count_or_estimate(
    queryset: QuerySet[Any], above: int = ESTIMATE_ABOVE
) -> tuple[int, bool]:
    """Return ``(count, estimated)``: the planner's estimate when it is above
    ``above`` rows (PostgreSQL only), else the exact ``COUNT``.

    An exact count of millions of rows reads them all (about a second per
    ten million here); the estimate is as good as the table's statistics
    (``ANALYZE``, autovacuum) and the planner's guess at the filters.
    """
    estimate = estimated_count(queryset)
    if estimate is not None and estimate > above:
        return estimate, True
    return queryset.count(), False


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


#: The queue overview counts the finished jobs of this last stretch of time:
#: counting all of them would read every row of the table.
FINISHED_WINDOW = dt.timedelta(hours=24)


def window_label(window: dt.timedelta) -> str:
    """Return a window as the overview's column headers show it: ``24 h``,
    ``30 min`` or ``90 s``."""
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


@dataclasses.dataclass
class QueueOverview:
    """One queue as the admin and the ``bgjobs queues`` command show it."""

    name: str
    paused_at: dt.datetime | None = None
    paused_by: str = ""
    #: Jobs per status; every ``JobStatus`` value is a key. Unfinished
    #: statuses count every such job; finished statuses count the jobs that
    #: finished within ``window``.
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(JobStatus.values, 0)
    )
    #: The finished counts cover the jobs finished since ``now - window``.
    window: dt.timedelta = FINISHED_WINDOW
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
        """Jobs that finished within ``window``."""
        return sum(self.counts[status] for status in FINISHED)


def queue_overview(
    now: dt.datetime | None = None, window: dt.timedelta = FINISHED_WINDOW
) -> list[QueueOverview]:
    """Return every queue that has jobs, a state row or an entry in
    ``BGJOBS["QUEUES"]``, sorted by name, with its paused state, its job
    counts by status, the age of its oldest due job and its declared limits.

    Unfinished jobs are counted exactly, finished ones only if they finished
    within ``window`` before ``now``, so the cost follows the unfinished jobs
    and the jobs finished in the window, not the rows the table has kept.
    Five queries whatever the number of queues: the queue names
    (``queue_names``), the unfinished counts (on the partial index
    ``bgjobs_job_unfinished``), the finished counts (ranges of
    ``bgjobs_job_queue_status``), the oldest due job (``bgjobs_job_unfinished``
    again),
    and the state rows; the limits come from the settings."""
    if window <= dt.timedelta(0):
        raise ValueError(f"queue_overview: window must be positive, not {window}")
    now = now or timezone.now()
    queues: dict[str, QueueOverview] = {}

    def of(name: str) -> QueueOverview:
        return queues.setdefault(name, QueueOverview(name, window=window))

    for name, limits in get_settings().QUEUES.items():
        of(name).limits = limits.describe()
    names = queue_names()
    for name in names:
        of(name)
    unfinished = Job.objects.filter(status__in=UNFINISHED)
    # By the names, the finished counts read one range of the (queue,
    # status, finished_at) index per queue and status, not all of it.
    finished = Job.objects.filter(
        queue__in=names, status__in=FINISHED, finished_at__gte=now - window
    )
    for rows in (unfinished, finished):
        counts = rows.values("queue", "status").annotate(n=Count("*")).order_by()
        for row in counts:
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
