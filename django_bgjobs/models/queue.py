"""The operator's state of each queue, and the database's rate-limit log.

A queue without a row is running. Workers read this table in the claim
statement itself, so a pause holds at every worker's next claim. The claim of
a queue with limits locks the queue's row (creating it if needed), which
serializes the claims of that queue across all workers.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class QueueState(models.Model):
    """Whether a queue is paused, since when and by whom."""

    name = models.CharField(max_length=100, primary_key=True)
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while the queue is paused"
    )
    paused_by = models.CharField(
        max_length=150, blank=True, default="", help_text="Who paused it"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "bgjobs_queue"
        ordering = ["name"]
        verbose_name = "queue"
        verbose_name_plural = "queues"

    def __str__(self) -> str:
        return f"{self.name} (paused)" if self.paused else self.name

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class RateSlot(models.Model):
    """One start counted by a rate limit: the database's sliding-window log.

    ``limit_key`` is "" for the queue's own rate, else the jobs' key.
    ``member`` is the name the Redis sorted set uses for the same start.
    """

    id = models.BigAutoField(primary_key=True)
    queue = models.CharField(max_length=100)
    limit_key = models.CharField(max_length=255, blank=True, default="")
    member = models.CharField(max_length=40)
    at = models.DateTimeField()

    class Meta:
        db_table = "bgjobs_rate_slot"
        indexes = [
            models.Index(
                fields=["queue", "limit_key", "at"], name="bgjobs_rate_slot_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.limit_key} at {self.at:%H:%M:%S.%f}"
