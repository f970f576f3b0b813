"""Schedules declared in code (``@background(cron=...)``) and in
``BGJOBS["SCHEDULES"]``, and their checks.

A declaration is validated whole (expression, zone, interval, misfire
policy, task, queue, priority, JSON arguments) before any row is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.conf import settings as django_settings

from . import registry
from .conf import QUEUE_NAME, get_settings
from .exceptions import BgJobsException, InvalidSchedule
from .models.schedule import Source
from .payload import encode_arguments
from .timetable import (
    DEFAULT_MISFIRE_CAP,
    DEFAULT_MISFIRE_GRACE,
    Timetable,
    validate_misfire,
)


@dataclasses.dataclass(frozen=True)
class Declaration:
    """A schedule declared in code or in ``BGJOBS["SCHEDULES"]``."""

    name: str
    task: str
    cron: str = ""
    interval: dt.timedelta | float | None = None
    tz: str | None = None
    args: tuple[Any, ...] | list[Any] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    queue: str = ""
    priority: int | None = None
    enabled: bool = True
    misfire: str = "skip"
    misfire_cap: int = DEFAULT_MISFIRE_CAP
    misfire_grace: float = DEFAULT_MISFIRE_GRACE
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    source: str = Source.CODE

    def timetable(self) -> Timetable:
        interval: Any = None
        if self.interval is not None and not self.cron:
            interval = self.interval
            if not isinstance(interval, dt.timedelta):
                interval = _seconds(interval)
        return Timetable(
            cron=self.cron,
            interval=interval,
            zone=self.tz or str(django_settings.TIME_ZONE or "UTC"),
            start=self.start_at,
            end=self.end_at,
        )

    def validate(self) -> None:
        """Raise ``InvalidSchedule`` naming the schedule and its first bad
        field; ``TaskNotRegistered`` if the task is unknown."""
        try:
            self._validate()
        except InvalidSchedule as error:
            raise InvalidSchedule(
                f"Schedule {self.name!r}: {error}", error.field
            ) from None

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 200:
            raise InvalidSchedule(f"name must be 1-200 characters, got {self.name!r}.")
        if self.cron and self.interval is not None:
            raise InvalidSchedule("give cron or interval, not both.")
        self.timetable().validate()
        validate_misfire(self.misfire, self.misfire_cap, self.misfire_grace)
        validate_options(self.task, self.queue, self.priority, self.args, self.kwargs)
        for field in ("start_at", "end_at"):
            value = getattr(self, field)
            if value is not None and (
                not isinstance(value, dt.datetime) or value.tzinfo is None
            ):
                raise InvalidSchedule(
                    f"{field} must be an aware datetime, got {value!r}."
                )

    def row_values(self) -> dict[str, Any]:
        """Return the ``Schedule`` column values this declaration sets."""
        table = self.timetable()
        return {
            "task": self.task,
            "cron": table.cron,
            "interval": table.interval,
            "timezone": table.zone,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "queue": self.queue,
            "priority": self.priority,
            "misfire": self.misfire,
            "misfire_cap": self.misfire_cap,
            "misfire_grace": float(self.misfire_grace),
            "start_at": self.start_at,
            "end_at": self.end_at,
        }


def _seconds(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    return value


def validate_options(
    task: str, queue: str, priority: Any, args: Any, kwargs: Any
) -> None:
    """Raise ``InvalidSchedule`` for an unregistered task, a bad queue name
    or priority, or arguments that are not JSON."""
    try:
        registry.get(task)
    except BgJobsException as error:
        raise InvalidSchedule(str(error), "task") from None
    if queue and not QUEUE_NAME.fullmatch(queue):
        raise InvalidSchedule(
            f"invalid queue name {queue!r}: use 1-100 letters, digits, '_', '-', "
            "'.' or ':'."
        )
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not -100 <= priority <= 100
    ):
        raise InvalidSchedule(
            f"priority must be an integer from -100 to 100, got {priority!r}."
        )
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise InvalidSchedule(
            f"args must be a list and kwargs a dict, got {type(args).__name__} and "
            f"{type(kwargs).__name__}."
        )
    try:
        encode_arguments(tuple(args), kwargs, get_settings().MAX_PAYLOAD_BYTES)
    except BgJobsException as error:
        raise InvalidSchedule(str(error)) from None


_SETTINGS_KEYS = {f.name for f in dataclasses.fields(Declaration)} - {"name", "source"}


def from_settings() -> list[Declaration]:
    """Return the declarations of ``BGJOBS["SCHEDULES"]``.

    Raise ``InvalidSchedule`` if an entry is not a dict of known keys.
    """
    raw = get_settings().SCHEDULES
    found = []
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise InvalidSchedule(
                f'BGJOBS["SCHEDULES"][{name!r}] must be a dict, got '
                f"{type(entry).__name__}."
            )
        unknown = set(entry) - _SETTINGS_KEYS
        if unknown or "task" not in entry:
            problem = (
                f"has unknown keys {sorted(unknown)}" if unknown else "needs a 'task'"
            )
            raise InvalidSchedule(
                f'BGJOBS["SCHEDULES"][{name!r}] {problem}; keys: '
                f"{', '.join(sorted(_SETTINGS_KEYS))}."
            )
        found.append(Declaration(name=name, source=Source.SETTINGS, **entry))
    return found


def from_code() -> list[Declaration]:
    """Return the schedules of ``@background(cron=...)`` and
    ``@background(interval=...)`` tasks."""
    found = []
    for name in registry.names():
        declaration = getattr(registry.get(name), "schedule", None)
        if declaration is not None:
            found.append(declaration)
    return found


def declared() -> list[Declaration]:
    """Return every declared schedule; raise ``InvalidSchedule`` for a bad
    one or a name declared twice."""
    found: dict[str, Declaration] = {}
    for declaration in [*from_code(), *from_settings()]:
        if declaration.name in found:
            raise InvalidSchedule(
                f"Schedule name {declaration.name!r} is declared twice (in code "
                'and in BGJOBS["SCHEDULES"], or by two tasks).'
            )
        declaration.validate()
        found[declaration.name] = declaration
    return list(found.values())
