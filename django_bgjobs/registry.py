"""Task name -> ``JobSpec``: the only path from a name stored in a row to code.

Filled by ``@background`` as task modules are imported (``apps.ready``
autodiscovers each app's ``tasks`` and ``jobs`` modules). Nothing is ever
imported from a string read out of the database.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .conf import get_settings
from .exceptions import BgJobsImproperlyConfigured, TaskNotRegistered
from .retention import Retention, parse_retention

if TYPE_CHECKING:
    from .decorators import JobSpec

_specs: dict[str, JobSpec[Any, Any]] = {}


def register(spec: JobSpec[Any, Any]) -> None:
    """Add ``spec`` under its name.

    Raise ``ImproperlyConfigured`` if another function already holds the name.
    """
    existing = _specs.get(spec.name)
    if existing is not None and _origin(existing) != _origin(spec):
        raise BgJobsImproperlyConfigured(
            f"Task name {spec.name!r} is taken by {_origin(existing)}; "
            f"give {_origin(spec)} another name with @background(name=...)."
        )
    _specs[spec.name] = spec


def _origin(spec: JobSpec[Any, Any]) -> str:
    return f"{spec.func.__module__}.{spec.func.__qualname__}"


def get(name: str) -> JobSpec[Any, Any]:
    """Return the spec registered as ``name``; raise ``TaskNotRegistered``."""
    try:
        return _specs[name]
    except KeyError:
        raise TaskNotRegistered(
            f"Task {name!r} is not registered: no @background function has that "
            "name in the modules this process imported (each app's tasks.py "
            "and jobs.py are imported at start-up)."
        ) from None


def is_coroutine(name: str) -> bool:
    """Return True if task ``name`` is registered and is a coroutine function
    (``async def``): the worker runs it on its event loop, not a thread."""
    spec = _specs.get(name)
    return spec is not None and spec.is_async


def has_coroutines() -> bool:
    """Return True if any registered task is a coroutine function."""
    return any(spec.is_async for spec in _specs.values())


def names() -> list[str]:
    """Return the names of all registered tasks, sorted."""
    return sorted(_specs)


def find(name: str) -> JobSpec[Any, Any] | None:
    """Return the spec registered as ``name``, or None."""
    return _specs.get(name)


def retention(task: str, queue: str, succeeded: bool) -> Retention | None:
    """Return the retention policy of a finished job of ``task`` in ``queue``
    (succeeded, or failed and cancelled): the task's own, else the queue's,
    else ``BGJOBS``'s; None if none is declared."""
    field = "remove_on_complete" if succeeded else "remove_on_fail"
    spec = _specs.get(task)
    if spec is not None:
        own = getattr(spec.options, field)
        if own is not None:
            return parse_retention(own, field)
    conf = get_settings()
    limits = conf.QUEUES.get(queue)
    if limits is not None and getattr(limits, field) is not None:
        policy: Retention | None = getattr(limits, field)
        return policy
    default: Retention | None = getattr(conf, field.upper())
    return default


@dataclasses.dataclass(frozen=True)
class CountScope:
    """Finished jobs of ``statuses`` of which only the newest ``count`` are
    kept: those of ``task``, or of ``queue``, or all jobs (neither), leaving
    out the tasks and queues that have a policy of their own."""

    statuses: tuple[str, ...]
    count: int
    task: str | None = None
    queue: str | None = None
    exclude_tasks: tuple[str, ...] = ()
    exclude_queues: tuple[str, ...] = ()


def count_scopes() -> list[CountScope]:
    """Return the scopes of every declared retention count, each job under
    its most specific policy only."""
    from .status import JobStatus

    conf = get_settings()
    scopes = []
    for field, statuses in (
        ("remove_on_complete", (JobStatus.SUCCEEDED,)),
        ("remove_on_fail", (JobStatus.FAILED, JobStatus.CANCELLED)),
    ):
        own_tasks = {
            name: parse_retention(getattr(spec.options, field), field)
            for name, spec in sorted(_specs.items())
            if getattr(spec.options, field) is not None
        }
        own_queues = {
            name: getattr(limits, field)
            for name, limits in sorted(conf.QUEUES.items())
            if getattr(limits, field) is not None
        }
        for name, policy in own_tasks.items():
            if policy is not None and policy.count is not None:
                scopes.append(CountScope(statuses, policy.count, task=name))
        for name, policy in own_queues.items():
            if policy.count is not None:
                scopes.append(
                    CountScope(
                        statuses,
                        policy.count,
                        queue=name,
                        exclude_tasks=tuple(own_tasks),
                    )
                )
        default = getattr(conf, field.upper())
        if default is not None and default.count is not None:
            scopes.append(
                CountScope(
                    statuses,
                    default.count,
                    exclude_tasks=tuple(own_tasks),
                    exclude_queues=tuple(own_queues),
                )
            )
    return scopes
