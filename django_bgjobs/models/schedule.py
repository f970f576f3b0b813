"""Rows of schedules and of their fired slots.

A ``ScheduleSlot`` is unique per schedule, kind and fire time: however many
workers tick at once, one fire time becomes one row, inserted in the same
transaction as its job, so a slot never exists without its job nor twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone as django_timezone

from ..timetable import DEFAULT_MISFIRE_CAP, DEFAULT_MISFIRE_GRACE, Timetable


def default_timezone() -> str:
    """Return ``settings.TIME_ZONE``, the zone of a schedule naming none."""
    return str(settings.TIME_ZONE or "UTC")


class Misfire(models.TextChoices):
    SKIP = "skip", "Skip: run only the latest missed slot"
    ALL = "all", "All: run each missed slot, up to the cap"
    NONE = "none", "None: run no missed slot"


class Source(models.TextChoices):
    ADMIN = "admin", "Admin"
    CODE = "code", "@background(cron=...)"
    SETTINGS = "settings", 'BGJOBS["SCHEDULES"]'


#: Fields a declaration (code or ``BGJOBS["SCHEDULES"]``) owns: synced at
#: worker start; the admin can change only ``enabled`` of a declared row.
DECLARED_FIELDS = (
    "task",
    "cron",
    "interval",
    "timezone",
    "args",
    "kwargs",
    "queue",
    "priority",
    "misfire",
    "misfire_cap",
    "misfire_grace",
    "start_at",
    "end_at",
)


class Schedule(models.Model):
    """A task fired on a cron expression or an interval."""

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=255)
    cron = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="5 fields, 6 with seconds last, or a macro such as @daily",
    )
    interval = models.DurationField(
        null=True, blank=True, help_text="Instead of cron: fire every interval"
    )
    timezone = models.CharField(
        max_length=64,
        default=default_timezone,
        help_text="IANA name; cron fields are read on this zone's wall clock",
    )
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(
        max_length=100, blank=True, default="", help_text="Empty: the task's queue"
    )
    priority = models.SmallIntegerField(
        null=True, blank=True, help_text="Empty: the task's priority"
    )
    enabled = models.BooleanField(default=True)
    misfire = models.CharField(max_length=10, choices=Misfire.choices, default="skip")
    misfire_cap = models.PositiveIntegerField(
        default=DEFAULT_MISFIRE_CAP, help_text="Most missed slots 'all' runs"
    )
    misfire_grace = models.FloatField(
        default=DEFAULT_MISFIRE_GRACE,
        help_text="Seconds late after which a slot counts as missed",
    )
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    last_fire_at = models.DateTimeField(null=True, blank=True)
    next_fire_at = models.DateTimeField(null=True, blank=True)
    run_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="Run now: the next tick enqueues one job"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default="admin")
    declared = models.BooleanField(
        default=False,
        help_text="Still declared in code or settings (those not are disabled)",
    )
    created_at = models.DateTimeField(default=django_timezone.now)
    updated_at = models.DateTimeField(default=django_timezone.now)

    class Meta:
        db_table = "bgjobs_schedule"
        ordering = ["name"]
        indexes = [
            models.Index(
                fields=["enabled", "next_fire_at"], name="bgjobs_schedule_due"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def expression(self) -> str:
        """The cron expression, or the interval as ``every 0:10:00``."""
        return self.cron or f"every {self.interval}"

    def timetable(self) -> Timetable:
        """Return the timetable of this row (not validated)."""
        return Timetable(
            cron=self.cron,
            interval=self.interval if not self.cron else None,
            zone=self.timezone,
            anchor=self.start_at or self.created_at,
            start=self.start_at,
            end=self.end_at,
        )


class SlotKind(models.TextChoices):
    SLOT = "slot", "Fire time"
    MANUAL = "manual", "Run now"


class ScheduleSlot(models.Model):
    """One fire of a schedule and the job it enqueued."""

    id = models.BigAutoField(primary_key=True)
    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="slots"
    )
    kind = models.CharField(max_length=10, choices=SlotKind.choices, default="slot")
    fire_at = models.DateTimeField(help_text="The fire time (run now: when asked)")
    # A plain id, not a foreign key: pruning deletes finished jobs in bulk
    # and the slot outlives its job as the record of the fire.
    job_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=django_timezone.now)

    class Meta:
        db_table = "bgjobs_schedule_slot"
        ordering = ["-fire_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "fire_at", "kind"], name="bgjobs_schedule_slot_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} at {self.fire_at:%Y-%m-%d %H:%M:%S}"
