"""The django-redis client named by ``BGJOBS["REDIS_CACHE"]``, behind a guard.

Redis only speeds things up; the database stays the source of truth. Every
Redis call goes through ``RedisGuard.call``: a ``RedisError`` (or an
``OSError`` from the socket) is caught, logged once when Redis goes away and
once when it is back, and the caller falls back to the database path. After
a failure the guard skips Redis for ``RETRY_AFTER`` seconds, so a request
does not wait for a connect timeout on every enqueue while Redis is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .outages import OutageTracker, describe

logger = logging.getLogger("django_bgjobs.redis")

T = TypeVar("T")

#: Seconds to skip Redis after a failed call.
RETRY_AFTER = 5.0


def configured_alias() -> str | None:
    """Return the cache alias of ``BGJOBS["REDIS_CACHE"]``, or None."""
    from .conf import get_settings

    return get_settings().REDIS_CACHE


def client(alias: str) -> Any:
    """Return the redis-py client of the django-redis cache ``alias``."""
    from django_redis import get_redis_connection

    return get_redis_connection(alias)


def channel(alias: str, name: str) -> str:
    """Return ``name`` with the cache's key prefix and version, so projects
    that share a Redis server do not hear each other."""
    from django.core.cache import caches

    key: str = caches[alias].make_key(f"bgjobs:{name}")
    return key


class RedisGuard:
    """Runs Redis calls for one purpose; falls back when Redis is away."""

    def __init__(self, purpose: str) -> None:
        self.purpose = purpose
        self.tracker = OutageTracker()
        self.skip_until = 0.0

    @property
    def down(self) -> bool:
        return self.tracker.down

    @property
    def skipping(self) -> bool:
        """True while calls are skipped after a failure."""
        return self.tracker.down and time.monotonic() < self.skip_until

    def reset(self) -> None:
        """Forget any outage (for tests)."""
        self.tracker = OutageTracker()
        self.skip_until = 0.0

    def call(self, action: Callable[[], T], fallback: T) -> T:
        """Return ``action()``, or ``fallback`` if Redis fails or was failing
        less than ``RETRY_AFTER`` seconds ago."""
        from redis.exceptions import RedisError

        if self.skipping:
            return fallback
        try:
            value = action()
        except (RedisError, OSError) as error:
            self.failed(error)
            return fallback
        self.succeeded()
        return value

    def failed(self, error: BaseException) -> None:
        """Note a failed call; log it if Redis was up until now."""
        self.skip_until = time.monotonic() + RETRY_AFTER
        if self.tracker.failed():
            logger.error(
                "Redis unavailable for %s, falling back to the database until it "
                "answers: %s",
                self.purpose,
                describe(error),
            )

    def succeeded(self) -> None:
        """Note a call that worked; log the end of an outage."""
        if (ended := self.tracker.succeeded()) is not None:
            logger.warning(
                "Redis available again for %s after %.1f s", self.purpose, ended[0]
            )
