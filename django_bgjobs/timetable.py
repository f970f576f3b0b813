"""Fire times of a schedule: pure functions of an explicit ``now``.

Cron slots are computed on the wall clock of the schedule's zone. A wall
time that does not exist (spring forward) fires once, at the first valid
instant after it; an ambiguous wall time (fall back) fires once, at its
first occurrence (``fold=0``). Intervals are absolute durations. Nothing
here reads the clock or the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

from .exceptions import InvalidSchedule

UTC = dt.UTC
MISFIRE_POLICIES = ("skip", "all", "none")
#: Seconds late after which a slot counts as missed (``misfire_grace``).
DEFAULT_MISFIRE_GRACE = 10.0
#: Most missed slots the ``all`` policy runs (``misfire_cap``).
DEFAULT_MISFIRE_CAP = 100
#: Slots ``due`` walks one by one before it jumps ahead (the count of
#: missed slots past it is an estimate).
SCAN_LIMIT = 10_000


def croniter_class() -> Any:
    """Return ``croniter.croniter``; raise ``InvalidSchedule`` if missing."""
    try:
        from croniter import croniter
    except ImportError:
        raise InvalidSchedule(
            "Cron schedules need croniter: pip install 'django-bgjobs[cron]'.",
            "croniter",
        ) from None
    return croniter


def validate_cron(expression: str) -> str:
    """Return ``expression`` stripped; raise ``InvalidSchedule`` naming the
    problem if it is not a 5- or 6-field croniter expression or a macro."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule(
            f"Cron expression must be a non-empty str, got {expression!r}.", "cron"
        )
    expression = " ".join(expression.split())
    fields = expression.split(" ")
    is_macro = expression.startswith("@")
    if not is_macro and len(fields) not in (5, 6):
        raise InvalidSchedule(
            f"Cron expression {expression!r} has {len(fields)} fields; use 5 "
            "(minute hour day month weekday), 6 (with seconds last) or a macro "
            "such as @daily.",
            "cron",
        )
    croniter = croniter_class()
    try:
        # A first fire time too: "0 0 30 2 *" parses but never fires.
        croniter(expression, dt.datetime(2026, 1, 1)).get_next(dt.datetime)
    except (ValueError, KeyError) as error:
        raise InvalidSchedule(
            f"Invalid cron expression {expression!r}: {error}", "cron"
        ) from None
    return expression


def validate_zone(name: str) -> zoneinfo.ZoneInfo:
    """Return the zone named ``name``; raise ``InvalidSchedule`` if unknown."""
    if not isinstance(name, str) or not name:
        raise InvalidSchedule(
            f"Time zone must be an IANA name, got {name!r}.", "timezone"
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'.",
            "timezone",
        ) from None


def validate_interval(interval: Any) -> dt.timedelta:
    """Return ``interval`` (seconds or a timedelta) as a timedelta; raise
    ``InvalidSchedule`` unless it is more than 0."""
    if isinstance(interval, bool) or not isinstance(
        interval, int | float | dt.timedelta
    ):
        raise InvalidSchedule(
            f"Interval must be seconds or a timedelta, got {type(interval).__name__} "
            f"{interval!r}.",
            "interval",
        )
    duration: dt.timedelta = (
        interval
        if isinstance(interval, dt.timedelta)
        else dt.timedelta(seconds=interval)
    )
    if duration <= dt.timedelta(0):
        raise InvalidSchedule(
            f"Interval must be more than 0, got {duration}.", "interval"
        )
    return duration


def validate_misfire(policy: Any, cap: Any, grace: Any) -> None:
    """Raise ``InvalidSchedule`` for an unknown policy, a cap < 1 or a
    negative grace."""
    if policy not in MISFIRE_POLICIES:
        raise InvalidSchedule(
            f"Misfire policy must be one of {', '.join(MISFIRE_POLICIES)}; got {policy!r}."
        )
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidSchedule(f"misfire_cap must be an integer >= 1, got {cap!r}.")
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise InvalidSchedule(f"misfire_grace must be seconds >= 0, got {grace!r}.")


def to_instant(wall: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """Return the UTC instant of the naive wall time ``wall`` in ``zone``.

    An ambiguous wall time gives its first occurrence; one that does not
    exist gives the first instant after it that the zone's clock shows.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap: fold=0 reads it with the offset before the jump (too late),
    # fold=1 with the offset after (too early). The jump is between them,
    # at the first instant whose wall time is not before ``wall``.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = instant
    if low > high:
        low, high = high, low
    while high - low > dt.timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


@dataclasses.dataclass(frozen=True)
class Timetable:
    """When a schedule fires: a cron expression in ``zone``, or an interval
    counted from ``anchor``; never before ``start`` nor after ``end``."""

    cron: str = ""
    interval: dt.timedelta | None = None
    zone: str = "UTC"
    anchor: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def validate(self) -> None:
        """Raise ``InvalidSchedule`` naming the first bad field."""
        if bool(self.cron) == (self.interval is not None):
            raise InvalidSchedule(
                "A schedule needs either a cron expression or an interval, not both."
            )
        if self.cron:
            validate_cron(self.cron)
        else:
            validate_interval(self.interval)
        validate_zone(self.zone)
        if self.start and self.end and self.end <= self.start:
            raise InvalidSchedule(
                f"end ({self.end}) must be after start ({self.start})."
            )

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """Return the first fire time strictly after ``after`` (aware), or
        None if the schedule has ended."""
        if self.start is not None and after < self.start:
            after = self.start - dt.timedelta(microseconds=1)
        found = (
            self._interval_after(after) if self.interval else self._cron_after(after)
        )
        if self.end is not None and found > self.end:
            return None
        return found

    def upcoming(self, after: dt.datetime, count: int) -> list[dt.datetime]:
        """Return the next ``count`` fire times after ``after``."""
        times: list[dt.datetime] = []
        current: dt.datetime | None = after
        while len(times) < count and current is not None:
            current = self.next_after(current)
            if current is not None:
                times.append(current)
        return times

    def _interval_after(self, after: dt.datetime) -> dt.datetime:
        interval = validate_interval(self.interval)
        anchor = self.anchor or self.start or after
        if after < anchor:
            return anchor
        steps = (after - anchor) // interval + 1
        return anchor + steps * interval

    def _cron_after(self, after: dt.datetime) -> dt.datetime:
        zone = validate_zone(self.zone)
        for wall in self._walls(after.astimezone(zone).replace(tzinfo=None)):
            # A wall time of the repeated hour read after its first pass, or
            # one in a gap that maps to a jump already fired, is skipped.
            instant = to_instant(wall, zone)
            if instant > after:
                return instant
        raise InvalidSchedule(
            f"Cron expression {self.cron!r} never fires."
        )  # pragma: no cover

    def _walls(self, start: dt.datetime) -> Iterator[dt.datetime]:
        iterator = croniter_class()(self.cron, start)
        for _ in range(100_000):
            yield iterator.get_next(dt.datetime)


@dataclasses.dataclass(frozen=True)
class Due:
    """What one tick fires for a schedule: the slots to enqueue now, how
    many it let go as missed, and the next fire time after ``now``."""

    slots: list[dt.datetime]
    missed: int
    next_fire_at: dt.datetime | None


def due(
    timetable: Timetable,
    next_fire_at: dt.datetime,
    now: dt.datetime,
    policy: str = "skip",
    cap: int = DEFAULT_MISFIRE_CAP,
    grace: float = DEFAULT_MISFIRE_GRACE,
) -> Due:
    """Return the slots from ``next_fire_at`` to ``now`` to fire under the
    misfire ``policy``.

    A slot at most ``grace`` seconds late always fires. Earlier slots are
    missed: ``skip`` fires the latest missed one, ``all`` the latest ``cap``
    of them, ``none`` none.
    """
    late: list[dt.datetime] = []
    on_time: list[dt.datetime] = []
    limit = now - dt.timedelta(seconds=grace)
    current: dt.datetime | None = next_fire_at
    skipped = scanned = 0
    while current is not None and current <= now:
        scanned += 1
        if scanned == SCAN_LIMIT and current < limit:
            # Down for long on a frequent schedule: jump to just before the
            # last ``cap`` missed slots instead of walking every one.
            spacing = (current - next_fire_at) / scanned
            jump = limit - spacing * (cap + 2)
            if jump > current:
                skipped += int((jump - current) / spacing) + len(late)
                late = []
                current = timetable.next_after(jump)
                continue
        if current >= limit:
            on_time.append(current)
        else:
            late.append(current)
            if len(late) > cap:
                late.pop(0)
                skipped += 1
        current = timetable.next_after(current)
    missed = skipped + len(late)
    if policy == "skip":
        late = late[-1:]
    elif policy == "none":
        late = []
    return Due(late + on_time, missed - len(late), current)
