"""Task name -> ``JobSpec``: the only path from a name stored in a row to code.

Filled by ``@background`` as task modules are imported (``apps.ready``
autodiscovers each app's ``tasks`` and ``jobs`` modules). Nothing is ever
imported from a string read out of the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import BgJobsImproperlyConfigured, TaskNotRegistered

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


def names() -> list[str]:
    """Return the names of all registered tasks, sorted."""
    return sorted(_specs)
