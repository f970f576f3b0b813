"""The shared state of each circuit breaker: one row per named dependency."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed (calls go through)"
    OPEN = "open", "Open (calls snooze)"
    HALF_OPEN = "half_open", "Half-open (one probe call)"


class Circuit(models.Model):
    """A circuit breaker's state, shared by every worker on every machine."""

    name = models.CharField(max_length=100, primary_key=True)
    state = models.CharField(
        max_length=20, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    failures = models.PositiveIntegerField(
        default=0, help_text="Failures in the current window"
    )
    window_started_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    probe_started_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "bgjobs_circuit"

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @staticmethod
    def closed_fields() -> dict[str, Any]:
        """Return the column values of a circuit closed now."""
        return {
            "state": CircuitState.CLOSED,
            "failures": 0,
            "window_started_at": None,
            "opened_at": None,
            "probe_started_at": None,
            "updated_at": timezone.now(),
        }
