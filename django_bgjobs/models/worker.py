"""Rows of worker processes (the registry) and of named leases.

A worker row is written by its own process only: inserted at start, touched
every heartbeat, closed (``stopped_at``) after a clean stop. A ``Lease`` row
is held by at most one holder until it expires; the broker takes it with one
conditional UPDATE.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerStatus(models.TextChoices):
    """Computed from a worker row and the clock; never stored."""

    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    LOST = "lost", "Lost"


class Worker(models.Model):
    """One worker process: where it runs, what it serves, when it last beat."""

    id = models.CharField(
        max_length=200, primary_key=True, help_text="host:pid:suffix, as on jobs"
    )
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True, help_text="Empty: all")
    concurrency = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by a clean stop"
    )
    lost_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When maintenance found its heartbeat older than the lease",
    )

    class Meta:
        db_table = "bgjobs_worker"
        ordering = ["-started_at", "id"]

    def __str__(self) -> str:
        return self.id


class Lease(models.Model):
    """A named lease, such as the one maintenance runs under."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "bgjobs_lease"

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder}"
