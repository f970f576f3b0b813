"""Rows of jobs, their attempts and their dead letters, with QuerySet filters.

No transition that needs a lock or a fence lives here: those are the broker's.
``active_key`` holds a job's idempotency key only while the job is unfinished,
so one plain unique constraint (portable to every vendor, unlike a partial
one) lets a finished job's key be used again.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..status import CLAIMABLE, FINISHED, UNFINISHED, AttemptOutcome, JobStatus


class JobQuerySet(models.QuerySet["Job"]):
    def in_queues(self, queues: list[str] | tuple[str, ...] | None) -> JobQuerySet:
        return self if not queues else self.filter(queue__in=queues)

    def claimable(self, now: Any = None) -> JobQuerySet:
        now = now or timezone.now()
        return self.filter(status__in=CLAIMABLE, run_at__lte=now)

    def unfinished(self) -> JobQuerySet:
        return self.filter(status__in=UNFINISHED)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED)


class Job(models.Model):
    """One enqueued call of a registered task."""

    id = models.BigAutoField(primary_key=True)
    task = models.CharField(max_length=255)
    queue = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0, help_text="-100..100, higher first")
    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.READY
    )
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="Last error")
    # NULL, not "", means "no key": unique columns allow many NULLs.
    key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    active_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    limit_key = models.CharField(  # noqa: DJ001
        max_length=255,
        null=True,
        blank=True,
        help_text="Groups jobs of a queue for its per-key rate and concurrency limits",
    )
    run_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(
        default=0, help_text="Claims so far; the fencing token of the current run"
    )
    uncharged = models.PositiveIntegerField(
        default=0, help_text="Runs interrupted by shutdown, not counted as attempts"
    )
    max_attempts = models.PositiveIntegerField(default=3)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds")
    result_ttl = models.FloatField(
        null=True, blank=True, help_text="Seconds to keep the row once finished"
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the finished row may be pruned"
    )
    worker = models.CharField(max_length=200, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When an operator asked the running job to stop",
    )
    progress = models.JSONField(
        null=True,
        blank=True,
        help_text="What the running job last reported: a percentage or JSON",
    )
    progress_at = models.DateTimeField(
        null=True, blank=True, help_text="When the progress was last written"
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "bgjobs_job"
        indexes = [
            models.Index(
                fields=["-priority", "run_at", "id"],
                name="bgjobs_job_claimable",
                condition=Q(status__in=CLAIMABLE),
            ),
            # An idle worker sleeps until the next delayed job is due.
            models.Index(
                fields=["run_at"],
                name="bgjobs_job_scheduled",
                condition=Q(status=JobStatus.SCHEDULED),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="bgjobs_job_running_lease",
                condition=Q(status=JobStatus.RUNNING),
            ),
            # The newest finished jobs of all queues, for a retention count
            # in BGJOBS (broker.pruning).
            models.Index(
                fields=["status", "finished_at"],
                name="bgjobs_job_finished",
                condition=Q(status__in=FINISHED),
            ),
            models.Index(
                fields=["expires_at"],
                name="bgjobs_job_expires",
                condition=Q(expires_at__isnull=False),
            ),
            # Counts by queue and status; with finished_at, the newest finished
            # jobs of a queue for retention counts (broker.pruning).
            models.Index(
                fields=["queue", "status", "finished_at"],
                name="bgjobs_job_queue_status",
            ),
            # Exact counts of the unfinished jobs by queue and status, and the
            # oldest due job of each queue, whatever the number of finished
            # rows: index-only scans (services.queries.queue_overview).
            models.Index(
                fields=["queue", "status", "run_at"],
                name="bgjobs_job_unfinished",
                condition=Q(status__in=UNFINISHED),
            ),
            # Plain indexes via Meta: a db_index/unique field would also get a
            # second "_like" index on PostgreSQL, costing every UPDATE.
            models.Index(
                fields=["task", "status", "finished_at"], name="bgjobs_job_task"
            ),
            models.Index(fields=["key"], name="bgjobs_job_key"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100),
                name="bgjobs_job_priority_range",
            ),
            models.UniqueConstraint(
                fields=["active_key"], name="bgjobs_job_active_key"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.task} ({self.status})"

    @property
    def charged_attempts(self) -> int:
        """Attempts that count against ``max_attempts``."""
        return self.attempt - self.uncharged


class Attempt(models.Model):
    """One run of a job: written when the run's outcome is recorded."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the (job, number) unique constraint serves it.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=200, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=AttemptOutcome.choices)
    error_class = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        db_table = "bgjobs_attempt"
        ordering = ["job_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "number"], name="bgjobs_attempt_once"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.job_id} attempt {self.number}: {self.outcome}"

    @property
    def duration(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


class DeadLetter(models.Model):
    """A job that gave up, with what it takes to look into it and rerun it.

    The payload and the attempt history are copied, so the dead letter outlives
    the pruning of its job row.
    """

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(
        Job,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="dead_letters",
    )
    task = models.CharField(max_length=255, db_index=True)
    queue = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    reason = models.TextField()
    error_class = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    requeued_at = models.DateTimeField(null=True, blank=True)
    requeued_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "bgjobs_deadletter"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"dead letter #{self.pk} ({self.task})"
