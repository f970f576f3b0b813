"""System checks ``bgjobs.E0xx`` and ``bgjobs.W0xx``: settings and database."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router


@checks.register(checks.Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report a bad ``BGJOBS`` (E001) and a database with no broker (E002)."""
    from .conf import get_settings

    errors: list[checks.CheckMessage] = []
    try:
        get_settings()
    except ImproperlyConfigured as error:
        errors.append(checks.Error(str(error), id="bgjobs.E001"))
        return errors
    from .models import Job

    alias = router.db_for_write(Job)
    vendor = connections[alias].vendor
    if vendor not in ("postgresql", "sqlite"):
        errors.append(
            checks.Error(
                f"Database {alias!r} is {vendor}; django-bgjobs runs on PostgreSQL "
                "and SQLite.",
                id="bgjobs.E002",
            )
        )
    return errors
