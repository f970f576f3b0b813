"""Operator actions on schedules: pause, resume, run now, and the checks
and previews of the admin's schedule form."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.db import router
from django.db.models import QuerySet
from django.utils import timezone

from .. import registry
from ..declarations import validate_options
from ..exceptions import InvalidSchedule
from ..models import Schedule, ScheduleSlot
from ..timetable import Timetable, validate_misfire
from .operations import ActionResult


def _rows(selection: QuerySet[Schedule] | Iterable[int]) -> QuerySet[Schedule]:
    rows = Schedule.objects.using(router.db_for_write(Schedule))
    if isinstance(selection, QuerySet):
        return rows.filter(pk__in=list(selection.values_list("pk", flat=True)))
    return rows.filter(pk__in=list(selection))


def pause_schedules(selection: QuerySet[Schedule] | Iterable[int]) -> ActionResult:
    """Disable the selected schedules: no slot fires until resumed."""
    rows = _rows(selection)
    total = rows.count()
    changed = rows.filter(enabled=True).update(
        enabled=False, next_fire_at=None, updated_at=timezone.now()
    )
    return ActionResult(changed=changed, skipped=total - changed)


def resume_schedules(
    selection: QuerySet[Schedule] | Iterable[int], now: dt.datetime | None = None
) -> ActionResult:
    """Enable the selected schedules from their next fire time after now:
    the slots of the pause are not run."""
    now = now or timezone.now()
    result = ActionResult()
    for row in _rows(selection):
        if row.enabled:
            result.skipped += 1
            continue
        row.enabled = True
        row.next_fire_at = row.timetable().next_after(now)
        row.updated_at = now
        row.save(update_fields=["enabled", "next_fire_at", "updated_at"])
        result.changed += 1
    return result


def run_schedules_now(
    selection: QuerySet[Schedule] | Iterable[int], now: dt.datetime | None = None
) -> ActionResult:
    """Ask for one job of each selected schedule now, outside its fire
    times, paused or not: the next tick of any worker (within about a
    second) enqueues it and records it as a ``manual`` slot. A schedule
    whose run is already asked for is skipped."""
    now = now or timezone.now()
    rows = _rows(selection)
    total = rows.count()
    changed = rows.filter(run_requested_at=None).update(run_requested_at=now)
    return ActionResult(changed=changed, skipped=total - changed)


#: Fields whose change moves the next fire time.
RETIME_FIELDS = ("cron", "interval", "timezone", "start_at", "end_at", "enabled")


def save_schedule(row: Schedule, now: dt.datetime | None = None) -> None:
    """Save a schedule edited by an operator. If its timing or state
    changed, its next fire time is computed again from now; otherwise a
    fire time already due is kept for the next tick."""
    now = now or timezone.now()
    rows = Schedule.objects.using(router.db_for_write(Schedule))
    stored = rows.filter(pk=row.pk).values(*RETIME_FIELDS).first() if row.pk else None
    if stored is None:
        row.source = "admin"
        row.created_at = now
    retime = stored is None or any(stored[f] != getattr(row, f) for f in RETIME_FIELDS)
    row.updated_at = now
    if not row.enabled:
        row.next_fire_at = None
    elif retime or row.next_fire_at is None:
        row.next_fire_at = row.timetable().next_after(now)
    row.save()


def check_schedule(values: dict[str, Any]) -> None:
    """Raise ``InvalidSchedule`` (with ``field`` set) for the first bad
    value of a schedule form: expression, interval, zone, task, queue,
    priority, arguments, misfire policy, start and end."""
    cron = (values.get("cron") or "").strip()
    interval = values.get("interval")
    if bool(cron) == (interval is not None):
        raise InvalidSchedule(
            "Give a cron expression or an interval, not both.", "cron"
        )
    Timetable(
        cron=cron,
        interval=interval,
        zone=values.get("timezone") or "",
        start=values.get("start_at"),
        end=values.get("end_at"),
    ).validate()
    validate_misfire(
        values.get("misfire"), values.get("misfire_cap"), values.get("misfire_grace")
    )
    validate_options(
        values.get("task") or "",
        values.get("queue") or "",
        values.get("priority"),
        values.get("args", []),
        values.get("kwargs", {}),
    )


@dataclasses.dataclass(frozen=True)
class FireTime:
    """A coming fire time, in the schedule's zone and in UTC."""

    local: dt.datetime
    utc: dt.datetime


def upcoming(
    row: Schedule, count: int = 5, now: dt.datetime | None = None
) -> list[FireTime]:
    """Return the next ``count`` fire times of ``row`` after now (or after
    its next fire time, if that is later). Raise ``InvalidSchedule`` for a
    malformed row."""
    now = now or timezone.now()
    table = row.timetable()
    table.validate()
    zone = zoneinfo.ZoneInfo(table.zone)
    after = now - dt.timedelta(microseconds=1)
    if row.next_fire_at is not None and row.next_fire_at > now:
        after = row.next_fire_at - dt.timedelta(microseconds=1)
    return [
        FireTime(local=t.astimezone(zone), utc=t.astimezone(dt.UTC))
        for t in table.upcoming(after, count)
    ]


def recent_slots(row: Schedule, count: int = 10) -> list[ScheduleSlot]:
    """Return the latest ``count`` fires of ``row``, newest first."""
    return list(
        ScheduleSlot.objects.using(router.db_for_read(ScheduleSlot))
        .filter(schedule=row)
        .order_by("-fire_at", "-id")[:count]
    )


def task_names() -> list[str]:
    """Return the registered task names, for the form's choices."""
    return registry.names()
