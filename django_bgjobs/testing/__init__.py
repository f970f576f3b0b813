"""Helpers for tests of your jobs and of django-bgjobs itself.

- ``run_inline()`` and ``BGJOBS["INLINE"]``: run each enqueued job in the
  test's process when its transaction commits (``inline``);
- ``drain()``: run every ready job now (``running``);
- ``enqueued()``, ``assert_enqueued()``, ``assert_not_enqueued()``,
  ``capture_enqueued()``: what was enqueued (``assertions``);
- fault injection: worker processes to kill and pause, PostgreSQL restarts,
  Redis outages (``faults``);
- pytest fixtures, loaded by the ``pytest11`` entry point (``plugin``).

Importing this package needs no Django settings: the helpers import the
models when called.
"""

from ..exceptions import TooManyJobs
from .assertions import (
    EnqueuedJobs,
    assert_enqueued,
    assert_not_enqueued,
    capture_enqueued,
    enqueued,
)
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
from .inline import run_inline
from .running import DrainResult, drain

__all__ = [
    "PG_RESTART_COMMAND_ENV",
    "REDIS_START_COMMAND",
    "REDIS_START_COMMAND_ENV",
    "REDIS_STOP_COMMAND",
    "REDIS_STOP_COMMAND_ENV",
    "DrainResult",
    "EnqueuedJobs",
    "FaultInjectionFailed",
    "Faults",
    "TooManyJobs",
    "Workers",
    "_stat",
    "assert_enqueued",
    "assert_not_enqueued",
    "capture_enqueued",
    "child_pids",
    "database_answers",
    "database_url",
    "drain",
    "enqueued",
    "postgresql_restart_command",
    "redis_answers",
    "restart_postgresql",
    "run_inline",
    "start_redis",
    "stop_redis",
]

try:
    # The fixtures of the old ``pytest_plugins = ["django_bgjobs.testing"]``.
    from .plugin import bgjobs_faults, bgjobs_workers
except ImportError:  # pragma: no cover - pytest is not installed
    pass
else:
    __all__ += ["bgjobs_faults", "bgjobs_workers"]
