"""Helpers for tests of django-bgjobs and of your own jobs.

``faults``: fault injection (worker processes to kill and pause, PostgreSQL
restarts, Redis outages). Every name stays importable from here.
"""

from .faults import (
    PG_RESTART_COMMAND_ENV,
    REDIS_START_COMMAND,
    REDIS_START_COMMAND_ENV,
    REDIS_STOP_COMMAND,
    REDIS_STOP_COMMAND_ENV,
    FaultInjectionFailed,
    Faults,
    Workers,
    _stat,
    child_pids,
    database_answers,
    database_url,
    postgresql_restart_command,
    redis_answers,
    restart_postgresql,
    start_redis,
    stop_redis,
)

__all__ = [
    "PG_RESTART_COMMAND_ENV",
    "REDIS_START_COMMAND",
    "REDIS_START_COMMAND_ENV",
    "REDIS_STOP_COMMAND",
    "REDIS_STOP_COMMAND_ENV",
    "FaultInjectionFailed",
    "Faults",
    "Workers",
    "_stat",
    "child_pids",
    "database_answers",
    "database_url",
    "postgresql_restart_command",
    "redis_answers",
    "restart_postgresql",
    "start_redis",
    "stop_redis",
]

try:
    from .faults import bgjobs_faults, bgjobs_workers
except ImportError:  # pragma: no cover - defined only where pytest is installed
    pass
else:
    __all__ += ["bgjobs_faults", "bgjobs_workers"]
