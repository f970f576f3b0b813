"""The ``django.tasks`` backend: ``TASKS = {"default": {"BACKEND":
"django_bgjobs.backend.BgJobsBackend"}}`` runs Django's ``@task`` functions
on django-bgjobs workers.

``django.tasks`` exists from Django 6.0. On older versions this module still
imports, and ``BgJobsBackend`` raises ``ImproperlyConfigured`` when it is
built (system check bgjobs.E021 says so first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import BgJobsImproperlyConfigured

try:
    import django.tasks  # noqa: F401
except ImportError:  # pragma: no cover - Django 5.2
    HAS_DJANGO_TASKS = False
else:
    HAS_DJANGO_TASKS = True

#: Why the backend cannot run here, or "" if it can.
UNAVAILABLE = (
    ""
    if HAS_DJANGO_TASKS
    else "django.tasks needs Django 6.0 or later; this is Django {version}."
)

if HAS_DJANGO_TASKS or TYPE_CHECKING:
    from .core import BgJobsBackend
else:  # pragma: no cover - Django 5.2

    class BgJobsBackend:
        """Stands in for the backend where Django has no ``django.tasks``."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            import django

            raise BgJobsImproperlyConfigured(
                UNAVAILABLE.format(version=django.get_version())
            )


__all__ = ["HAS_DJANGO_TASKS", "BgJobsBackend"]
