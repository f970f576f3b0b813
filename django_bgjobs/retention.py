"""How long finished jobs are kept: the seed's BullMQ ``removeOnComplete``
and ``removeOnFail``, in Django form.

A policy is declared as ``remove_on_complete`` (succeeded jobs) and
``remove_on_fail`` (failed and cancelled jobs) on a task (``@background``),
on a queue (``BGJOBS["QUEUES"][name]``) or for all jobs (``BGJOBS
["REMOVE_ON_COMPLETE"]``, ``["REMOVE_ON_FAIL"]``), the most specific one
winning. Each takes what BullMQ takes:

- ``True``: remove the job as soon as it finishes;
- ``False``: keep it (overrides a less specific policy);
- an integer ``n``: keep the newest ``n`` finished jobs of the scope;
- ``{"age": seconds, "count": n}``: both bounds, either may be left out.

With no policy anywhere, ``result_ttl`` / ``RESULT_TTL`` applies as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .exceptions import BgJobsImproperlyConfigured


@dataclasses.dataclass(frozen=True)
class Retention:
    """Keep a finished job at most ``age`` seconds, and only while it is
    among the newest ``count`` of its scope; None is "no bound"."""

    age: float | None = None
    count: int | None = None

    def describe(self, jobs: str = "finished jobs") -> str:
        """Return the policy for a person, naming the jobs it applies to:
        "remove failed at once", "keep completed", "keep no failed" (a count
        of 0), "keep completed 1h / newest 1000" (kept at most an hour, and
        only the newest 1000)."""
        if self.age == 0:
            return f"remove {jobs} at once"
        if self.count == 0:
            return f"keep no {jobs}"
        bounds = []
        if self.age is not None:
            bounds.append(span(self.age))
        if self.count is not None:
            bounds.append(f"newest {self.count}")
        return " ".join(["keep", jobs, " / ".join(bounds)]).rstrip()

    def __str__(self) -> str:
        return self.describe()


_SPANS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def split_span(seconds: float) -> tuple[float, str]:
    """Return ``seconds`` as a count and the largest unit it is a whole
    number of: ``(1, "h")`` for 3600, ``(90, "s")``, ``(500, "ms")`` for
    0.5; else in seconds, ``(1.5, "s")``."""
    units = _SPANS if seconds >= 1 else (("ms", 0.001),)
    for unit, size in units:
        count = round(seconds / size, 6)
        if count.is_integer():
            return count, unit
    return seconds, "s"


def span(seconds: float) -> str:
    """Return ``seconds`` as "1h", "90s", "500ms", "1.5s", "2d"."""
    count, unit = split_span(seconds)
    return f"{number(count)}{unit}"


def number(value: float) -> str:
    """Return ``value`` without a trailing ".0" or an exponent for whole
    numbers: "3", "1234567", "1.5"."""
    value = float(value)
    return str(int(value)) if value.is_integer() else str(round(value, 6))


#: The policy of ``True``: removed at once.
REMOVE = Retention(age=0.0)
#: The policy of ``False``: kept.
KEEP = Retention()


def parse_retention(value: Any, where: str) -> Retention | None:
    """Return the policy of a ``remove_on_*`` value (None: not declared);
    raise ``BgJobsImproperlyConfigured`` naming ``where`` if it is bad."""
    if value is None:
        return None
    if value is True:
        return REMOVE
    if value is False:
        return KEEP
    if isinstance(value, int):
        return Retention(count=_count(value, where))
    if isinstance(value, Mapping):
        unknown = set(value) - {"age", "count"}
        if unknown or not value:
            raise BgJobsImproperlyConfigured(
                f"{where} as a dict takes 'age' (seconds) and/or 'count', got "
                f"{dict(value)!r}."
            )
        age = value.get("age")
        if age is not None and (
            isinstance(age, bool) or not isinstance(age, int | float) or age < 0
        ):
            raise BgJobsImproperlyConfigured(
                f"{where}['age'] must be a number of seconds >= 0, got {age!r}."
            )
        count = value.get("count")
        return Retention(
            age=None if age is None else float(age),
            count=None if count is None else _count(count, f"{where}['count']"),
        )
    raise BgJobsImproperlyConfigured(
        f"{where} must be True, False, a count of jobs to keep, or "
        f"{{'age': seconds, 'count': n}}, got {value!r}."
    )


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BgJobsImproperlyConfigured(
            f"{where} must be an integer >= 0, got {value!r}."
        )
    return value
