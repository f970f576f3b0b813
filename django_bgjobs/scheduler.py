"""Schedules in the database: declarations synced to rows, and the tick that
turns each due fire time into exactly one job.

The tick locks a due schedule row (skipping rows another worker holds),
inserts each slot's job and its unique ``ScheduleSlot`` row in one
transaction, and moves ``next_fire_at`` on. Any number of workers may tick
at once: the slot row's unique constraint is the final word, so a fire time
never becomes two jobs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    connections,
    router,
    transaction,
)
from django.db.models import Q
from django.utils import timezone

from . import registry
from .declarations import Declaration, declared
from .enqueue import JobHandle, enqueue
from .exceptions import InvalidSchedule
from .models import Schedule, ScheduleSlot, SlotKind, Source
from .models.schedule import DECLARED_FIELDS
from .timetable import due

logger = logging.getLogger(__name__)

#: How long fired slot rows are kept: the record of what fired, and the
#: guard against a second fire, long past the time any worker could retry.
SLOT_TTL = dt.timedelta(days=7)
#: Fields whose change moves the next fire time.
TIMING_FIELDS = ("cron", "interval", "timezone", "start_at", "end_at")


def sync(
    declarations: Iterable[Declaration] | None = None, now: dt.datetime | None = None
) -> None:
    """Create or update the rows of declared schedules; disable (never
    delete) declared rows no longer declared; leave admin-made rows alone.

    Safe to run from many workers at once. An admin-made schedule of the
    same name keeps its row; the declaration is then ignored, with a log.
    """
    now = now or timezone.now()
    declarations = list(declared() if declarations is None else declarations)
    using = router.db_for_write(Schedule)
    for declaration in declarations:
        for _ in range(2):  # a concurrent creator wins the first round
            try:
                with transaction.atomic(using=using):
                    _sync_one(declaration, now, using)
                break
            except IntegrityError:
                continue
    names = [d.name for d in declarations]
    gone = (
        Schedule.objects.using(using)
        .filter(declared=True)
        .exclude(source=Source.ADMIN)
        .exclude(name__in=names)
    )
    for name in gone.values_list("name", flat=True):
        logger.info("schedule no longer declared name=%s: disabled", name)
    gone.update(declared=False, enabled=False, next_fire_at=None, updated_at=now)


def _sync_one(declaration: Declaration, now: dt.datetime, using: str) -> None:
    values = declaration.row_values()
    row = (
        Schedule.objects.using(using)
        .select_for_update()
        .filter(name=declaration.name)
        .first()
    )
    if row is None:
        row = Schedule(name=declaration.name, source=declaration.source, created_at=now)
        _assign(row, values, declaration.enabled, now)
        row.save(using=using, force_insert=True)
        return
    if row.source == Source.ADMIN:
        logger.warning(
            "schedule name=%s is declared in code or settings but was made in the "
            "admin; the admin's row is kept",
            row.name,
        )
        return
    changed = [f for f in DECLARED_FIELDS if getattr(row, f) != values[f]]
    if not changed and row.declared and row.source == declaration.source:
        return
    retime = any(f in TIMING_FIELDS for f in changed) or not row.declared
    enabled = declaration.enabled if not row.declared else row.enabled
    row.source = declaration.source
    _assign(row, values, enabled, now, retime)
    row.save(using=using)


def _assign(
    row: Schedule,
    values: dict[str, Any],
    enabled: bool,
    now: dt.datetime,
    retime: bool = True,
) -> None:
    for field, value in values.items():
        setattr(row, field, value)
    row.declared = True
    row.enabled = enabled
    row.updated_at = now
    if retime or row.next_fire_at is None:
        row.next_fire_at = next_fire_time(row, now) if enabled else None


def next_fire_time(row: Schedule, now: dt.datetime) -> dt.datetime | None:
    """Return the first fire time of ``row`` after ``now``."""
    return row.timetable().next_after(now)


def tick(now: dt.datetime | None = None, using: str | None = None) -> int:
    """Fire every schedule due at ``now``; return how many jobs it enqueued.

    A schedule whose task is not registered in this process, or whose row
    is malformed, is logged and left for a later tick; it never stops the
    others.
    """
    now = now or timezone.now()
    using = using or router.db_for_write(Schedule)
    ids = list(
        Schedule.objects.using(using)
        .filter(_due(now))
        .order_by("next_fire_at")
        .values_list("pk", flat=True)
    )
    fired = 0
    for pk in ids:
        try:
            fired += _fire_due(pk, now, using)
        except DatabaseError:
            raise
        except Exception as error:  # a bad row must not starve the others
            logger.error("schedule id=%s could not fire: %r", pk, error)
    return fired


def _due(now: dt.datetime) -> Q:
    return Q(enabled=True, next_fire_at__lte=now) | Q(run_requested_at__isnull=False)


def _locked(pk: int, using: str) -> Any:
    rows = Schedule.objects.using(using)
    if connections[using].features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return rows.filter(pk=pk)


def _fire_due(pk: int, now: dt.datetime, using: str) -> int:
    with transaction.atomic(using=using):
        row = _locked(pk, using).filter(_due(now)).first()
        if row is None:
            return 0  # another worker holds it, or fired it already
        manual = _fire_requested(row, using)
        if not row.enabled or row.next_fire_at is None or row.next_fire_at > now:
            return manual
        plan = due(
            row.timetable(),
            row.next_fire_at,
            now,
            row.misfire,
            row.misfire_cap,
            row.misfire_grace,
        )
        fired = [slot for slot in plan.slots if _fire(row, slot, SlotKind.SLOT, using)]
        if plan.missed:
            logger.warning(
                "schedule name=%s missed %d slot(s) (misfire=%s)",
                row.name,
                plan.missed,
                row.misfire,
            )
        if plan.slots:
            row.last_fire_at = plan.slots[-1]
        row.next_fire_at = plan.next_fire_at
        row.save(using=using, update_fields=["last_fire_at", "next_fire_at"])
        ScheduleSlot.objects.using(using).filter(
            schedule=row, fire_at__lt=now - SLOT_TTL
        ).delete()
    return manual + len(fired)


def _fire_requested(row: Schedule, using: str) -> int:
    """Enqueue the run an operator asked for ("run now"), once."""
    if row.run_requested_at is None:
        return 0
    handle = _fire(row, row.run_requested_at, SlotKind.MANUAL, using)
    row.run_requested_at = None
    row.save(using=using, update_fields=["run_requested_at"])
    return 0 if handle is None else 1


def _fire(
    row: Schedule, fire_at: dt.datetime, kind: str, using: str
) -> JobHandle | None:
    """Enqueue the job of one slot and insert its row in one savepoint;
    return None if that slot was fired already."""
    spec = registry.get(row.task)
    try:
        with transaction.atomic(using=using):
            handle = enqueue(
                spec.using(queue=row.queue or None, priority=row.priority),
                row.args,
                row.kwargs,
            )
            ScheduleSlot.objects.using(using).create(
                schedule=row, kind=kind, fire_at=fire_at, job_id=handle.id
            )
    except IntegrityError:
        return None
    logger.info(
        "schedule fired name=%s slot=%s job=%s",
        row.name,
        fire_at.isoformat(),
        handle.id,
    )
    return handle


def run_now(row: Schedule, now: dt.datetime | None = None) -> JobHandle:
    """Enqueue one job of ``row`` now, outside its slots, and record it.

    Raise ``TaskNotRegistered`` if its task is unknown in this process.
    """
    now = now or timezone.now()
    using = router.db_for_write(Schedule)
    for _ in range(3):
        with transaction.atomic(using=using):
            handle = _fire(row, now, SlotKind.MANUAL, using)
        if handle is not None:
            return handle
        now += dt.timedelta(microseconds=1)  # a run now at the same instant
    raise InvalidSchedule(f"Could not record a run of schedule {row.name!r}.")
