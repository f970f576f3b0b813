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
    if vendor not in ("postgresql", "sqlite", "mysql"):
        errors.append(
            checks.Error(
                f"Database {alias!r} is {vendor}; django-bgjobs runs on PostgreSQL, "
                "SQLite, MySQL and MariaDB.",
                id="bgjobs.E002",
            )
        )
    return errors


@checks.register(checks.Tags.compatibility)
def check_lease(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when heartbeats are too rare to keep leases alive (W001)."""
    from .conf import get_settings

    try:
        conf = get_settings()
    except ImproperlyConfigured:
        return []  # reported as E001
    if conf.HEARTBEAT_SECONDS * 2 <= conf.LEASE_SECONDS:
        return []
    return [
        checks.Warning(
            f"BGJOBS['HEARTBEAT_SECONDS'] ({conf.HEARTBEAT_SECONDS}) should be at "
            f"most half of BGJOBS['LEASE_SECONDS'] ({conf.LEASE_SECONDS}): one "
            "late heartbeat would let the reaper take running jobs away.",
            hint="Lower HEARTBEAT_SECONDS or raise LEASE_SECONDS.",
            id="bgjobs.W001",
        )
    ]


@checks.register(checks.Tags.compatibility, checks.Tags.caches)
def check_redis_cache(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Report a ``REDIS_CACHE`` that is not a django-redis cache (E003)."""
    from django.conf import settings

    from .conf import get_settings

    try:
        alias = get_settings().REDIS_CACHE
    except ImproperlyConfigured:
        return []  # reported as E001
    if alias is None:
        return []
    cache = getattr(settings, "CACHES", {}).get(alias)
    if cache is None:
        problem = f"names the cache {alias!r}, which is not in CACHES"
    elif not str(cache.get("BACKEND", "")).startswith("django_redis."):
        problem = (
            f"names the cache {alias!r}, whose BACKEND {cache.get('BACKEND')!r} "
            "is not django-redis"
        )
    else:
        return []
    return [
        checks.Error(
            f"BGJOBS['REDIS_CACHE'] {problem}.",
            hint='Use a cache with "BACKEND": "django_redis.cache.RedisCache", '
            "or remove REDIS_CACHE.",
            id="bgjobs.E003",
        )
    ]


@checks.register(checks.Tags.compatibility)
def check_tasks_backend(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Report a ``TASKS`` alias that names the django-bgjobs backend on a
    Django without ``django.tasks`` (E021). Django 6 checks the backends
    themselves (``BgJobsBackend.check``: E020, E022)."""
    import django
    from django.conf import settings

    from .backend import HAS_DJANGO_TASKS, UNAVAILABLE

    tasks = getattr(settings, "TASKS", None)
    if HAS_DJANGO_TASKS or not isinstance(tasks, dict):
        return []
    return [
        checks.Error(
            f"TASKS[{alias!r}] names {params['BACKEND']!r}, but "
            + UNAVAILABLE.format(version=django.get_version()),
            hint="Upgrade Django, or remove the alias from TASKS.",
            id="bgjobs.E021",
        )
        for alias, params in tasks.items()
        if isinstance(params, dict)
        and str(params.get("BACKEND", "")).startswith("django_bgjobs.")
    ]


#: Check ids by the field of a bad schedule (``InvalidSchedule.field``).
SCHEDULE_CHECKS = {
    "cron": "bgjobs.E010",
    "timezone": "bgjobs.E011",
    "interval": "bgjobs.E012",
    "task": "bgjobs.E013",
    "croniter": "bgjobs.E015",
}


@checks.register(checks.Tags.compatibility)
def check_schedules(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Report bad schedules of ``@background(cron=...)`` and
    ``BGJOBS["SCHEDULES"]``: an invalid cron expression (E010), an unknown
    time zone (E011), an interval <= 0 (E012), a task not registered
    (E013), any other bad field or a name declared twice (E014), croniter
    missing (E015)."""
    from .declarations import Declaration, from_code, from_settings
    from .exceptions import InvalidSchedule

    try:
        found: list[Declaration] = [*from_code(), *from_settings()]
    except ImproperlyConfigured:
        return []  # reported as E001
    except InvalidSchedule as error:
        return [checks.Error(str(error), id="bgjobs.E014")]
    errors: list[checks.CheckMessage] = []
    names: set[str] = set()
    for declaration in found:
        if declaration.name in names:
            errors.append(
                checks.Error(
                    f"Schedule name {declaration.name!r} is declared twice.",
                    hint="Give one of them another name.",
                    id="bgjobs.E014",
                )
            )
        names.add(declaration.name)
        try:
            declaration.validate()
        except InvalidSchedule as error:
            check_id = SCHEDULE_CHECKS.get(error.field, "bgjobs.E014")
            errors.append(checks.Error(str(error), id=check_id))
    return errors
