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

    def describe(self) -> str:
        if self.age is None and self.count is None:
            return "kept"
        parts = []
        if self.age is not None:
            parts.append(f"{self.age:g} s")
        if self.count is not None:
            parts.append(f"newest {self.count}")
        return ", ".join(parts)


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
