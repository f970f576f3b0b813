"""Queue limits as declared in ``BGJOBS["QUEUES"]``: parsed and checked.

A rate is ``"30/s"``, ``"1000/h"``, ``"5/10s"`` or the seed's BullMQ
``limiter`` shape ``{"max": 30, "duration": 1000}`` (milliseconds, as in
BullMQ). A queue's entry may hold ``rate`` and ``concurrency`` (the whole
queue) and ``key_rate`` and ``key_concurrency`` (each ``limit_key`` of the
queue on its own). Bad input raises ``BgJobsImproperlyConfigured`` naming the
queue, the key and the value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .exceptions import BgJobsImproperlyConfigured
from .retention import Retention, number, parse_retention, split_span

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*")
#: The limits a queue's entry may hold.
LIMIT_KEYS = ("rate", "concurrency", "key_rate", "key_concurrency")
#: The retention policies it may hold (``retention``).
RETENTION_KEYS = ("remove_on_complete", "remove_on_fail")


@dataclasses.dataclass(frozen=True)
class Rate:
    """At most ``limit`` starts in any window of ``seconds``."""

    limit: int
    seconds: float

    def __str__(self) -> str:
        """Return the rate as it is declared: "30/s", "1000/h", "5/10s",
        "250/500ms"."""
        count, unit = split_span(self.seconds)
        return f"{self.limit}/{'' if count == 1 else number(count)}{unit}"


@dataclasses.dataclass(frozen=True)
class QueueLimits:
    """The limits and retention policies of one queue; ``None`` is "no
    limit" and "no policy of its own"."""

    rate: Rate | None = None
    concurrency: int | None = None
    key_rate: Rate | None = None
    key_concurrency: int | None = None
    remove_on_complete: Retention | None = None
    remove_on_fail: Retention | None = None

    @property
    def limited(self) -> bool:
        """True if the queue has a rate or concurrency limit."""
        return any(getattr(self, name) is not None for name in LIMIT_KEYS)

    @property
    def counts_running(self) -> bool:
        """True if a claim must count the queue's running jobs."""
        return self.concurrency is not None or self.key_concurrency is not None

    @property
    def per_key(self) -> bool:
        return self.key_rate is not None or self.key_concurrency is not None

    @property
    def longest_window(self) -> float:
        rates = [r.seconds for r in (self.rate, self.key_rate) if r is not None]
        return max(rates, default=0.0)

    def describe(self) -> str:
        """Return the limits and the retention as one line, for the admin and
        the CLI: "rate 10/s, concurrency 4, per key concurrency 1; keep
        completed 1h / newest 1000, remove failed at once". Empty if the
        queue declares nothing."""
        limits = [
            f"{label} {value}"
            for label, value in (
                ("rate", self.rate),
                ("concurrency", self.concurrency),
                ("per key rate", self.key_rate),
                ("per key concurrency", self.key_concurrency),
            )
            if value is not None
        ]
        retention = [
            policy.describe(jobs)
            for jobs, policy in (
                ("completed", self.remove_on_complete),
                ("failed", self.remove_on_fail),
            )
            if policy is not None
        ]
        return "; ".join(", ".join(part) for part in (limits, retention) if part)


def parse_rate(value: Any, where: str = "rate") -> Rate:
    """Return the ``Rate`` of ``"30/s"``, ``"1000/h"``, ``"5/10s"`` or
    ``{"max": 30, "duration": 1000}`` (milliseconds); raise
    ``BgJobsImproperlyConfigured`` naming ``where`` otherwise."""
    if isinstance(value, Mapping):
        return _parse_limiter(value, where)
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    unit = _unit(match.group(3)) if match else ""
    if match is None or unit not in _UNITS:
        raise BgJobsImproperlyConfigured(
            f"{where} must be like '30/s', '1000/h', '5/10s' or "
            f"{{'max': 30, 'duration': 1000}} (milliseconds), got {value!r}."
        )
    limit = int(match.group(1))
    seconds = float(match.group(2) or 1) * _UNITS[unit]
    return _checked(Rate(limit, seconds), where, value)


def _unit(name: str) -> str:
    """Return ``name`` without a plural "s" ("hours" is "hour")."""
    if name not in _UNITS and name.endswith("s"):
        return name[:-1]
    return name


def _parse_limiter(value: Mapping[str, Any], where: str) -> Rate:
    if set(value) != {"max", "duration"}:
        raise BgJobsImproperlyConfigured(
            f"{where} as a dict takes exactly 'max' and 'duration' (milliseconds), "
            f"got {dict(value)!r}."
        )
    limit, duration = value["max"], value["duration"]
    numbers = (
        isinstance(limit, int)
        and not isinstance(limit, bool)
        and isinstance(duration, int | float)
        and not isinstance(duration, bool)
    )
    if not numbers:
        raise BgJobsImproperlyConfigured(
            f"{where}: 'max' must be an integer and 'duration' a number of "
            f"milliseconds, got {dict(value)!r}."
        )
    return _checked(Rate(limit, duration / 1000), where, dict(value))


def _checked(rate: Rate, where: str, value: Any) -> Rate:
    if rate.limit < 1 or rate.seconds <= 0:
        raise BgJobsImproperlyConfigured(
            f"{where} needs at least 1 job in a window longer than 0, got {value!r}."
        )
    return rate


def _parse_count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BgJobsImproperlyConfigured(
            f"{where} must be an integer >= 1, got {value!r}."
        )
    return value


def parse_queues(raw: Any, valid_name: re.Pattern[str]) -> dict[str, QueueLimits]:
    """Return ``BGJOBS["QUEUES"]`` as ``{queue: QueueLimits}``."""
    if not isinstance(raw, Mapping):
        raise BgJobsImproperlyConfigured(
            f"BGJOBS['QUEUES'] must be a dict of queue name to limits, got {raw!r}."
        )
    parsed = {}
    for name, entry in raw.items():
        where = f"BGJOBS['QUEUES'][{name!r}]"
        if not isinstance(name, str) or not valid_name.fullmatch(name):
            raise BgJobsImproperlyConfigured(
                f"{where}: a queue name is 1-100 letters, digits, '_', '-', '.' or ':'."
            )
        if not isinstance(entry, Mapping):
            raise BgJobsImproperlyConfigured(f"{where} must be a dict, got {entry!r}.")
        known = (*LIMIT_KEYS, *RETENTION_KEYS)
        unknown = set(entry) - set(known)
        if unknown:
            raise BgJobsImproperlyConfigured(
                f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"known: {', '.join(known)}."
            )

        limits = _entry_limits(entry, where)
        if limits != QueueLimits():
            parsed[name] = limits
    return parsed


def _entry_limits(entry: Mapping[str, Any], where: str) -> QueueLimits:
    found: dict[str, Any] = {}
    for name in LIMIT_KEYS:
        value = entry.get(name)
        if value is None:
            continue
        label = f"{where}[{name!r}]"
        rate = name.endswith("rate")
        found[name] = parse_rate(value, label) if rate else _parse_count(value, label)
    for name in RETENTION_KEYS:
        found[name] = parse_retention(entry.get(name), f"{where}[{name!r}]")
    return QueueLimits(**found)
