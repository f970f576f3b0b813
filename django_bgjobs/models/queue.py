"""The operator's state of each queue: one row per queue that was ever paused.

A queue without a row is running. Workers read this table in the claim
statement itself, so a pause holds at every worker's next claim.
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
