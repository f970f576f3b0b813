"""``settings.BGJOBS`` read once into a frozen, typed ``Settings``.

Read lazily on first use, cached, and cleared on ``setting_changed``; never at
import time. An unknown key or a value of the wrong type raises
``ImproperlyConfigured`` naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .exceptions import BgJobsImproperlyConfigured
from .quotas import QueueLimits, parse_queues
from .retention import Retention, parse_retention


@dataclasses.dataclass(frozen=True)
class Settings:
    """Typed view of ``settings.BGJOBS``; see docs/reference/settings.md."""

    DEFAULT_QUEUE: str = "default"
    DEFAULT_PRIORITY: int = 0
    DEFAULT_ATTEMPTS: int = 3
    DEFAULT_BACKOFF: str = "exponential"
    BACKOFF_DELAY: float = 2.0
    BACKOFF_MAX: float = 3600.0
    BACKOFF_JITTER: bool = True
    DEFAULT_TIMEOUT: float | None = None
    RESULT_TTL: float | None = None
    MAX_PAYLOAD_BYTES: int = 256 * 1024
    LEASE_SECONDS: float = 30.0
    HEARTBEAT_SECONDS: float = 10.0
    POLL_INTERVAL: float = 0.25
    LISTEN_NOTIFY: bool = True
    REDIS_CACHE: str | None = None
    WAKE_POLL_INTERVAL: float = 1.0
    CLAIM_BATCH_MAX: int = 100
    FLUSH_INTERVAL: float = 0.005
    PRUNE_BATCH: int = 1000
    BURST_HORIZON: float = 5.0
    #: Coroutine jobs one worker process runs at once on its event loop.
    ASYNC_CONCURRENCY: int = 100
    #: The shortest time between two progress writes of one job.
    PROGRESS_INTERVAL: float = 0.5
    #: Rate and concurrency limits and retention by queue name
    #: (``quotas.parse_queues``).
    QUEUES: dict[str, QueueLimits] = dataclasses.field(default_factory=dict)
    REMOVE_ON_COMPLETE: Retention | None = None
    REMOVE_ON_FAIL: Retention | None = None
    DEAD_LETTER_TTL: float | None = None
    #: Seconds a stopped or lost worker's registry row is kept (None: for
    #: ever); each worker process, recycled ones too, adds a row.
    WORKER_TTL: float | None = 7 * 24 * 3600
    #: Run each job in the enqueuing process once its transaction commits
    #: (tests; ``django_bgjobs.testing``).
    INLINE: bool = False
    INLINE_RAISE: bool = False
    #: Schedules by name (``scheduler.from_settings`` reads the entries).
    SCHEDULES: dict[str, Any] = dataclasses.field(default_factory=dict)

    def limits(self, queue: str) -> QueueLimits | None:
        """Return the limits of ``queue``, or None if it has none."""
        return self.QUEUES.get(queue)


_NUMBER = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "DEFAULT_QUEUE": (str,),
    "DEFAULT_PRIORITY": (int,),
    "DEFAULT_ATTEMPTS": (int,),
    "DEFAULT_BACKOFF": (str,),
    "BACKOFF_DELAY": _NUMBER,
    "BACKOFF_MAX": _NUMBER,
    "BACKOFF_JITTER": (bool,),
    "DEFAULT_TIMEOUT": (*_NUMBER, type(None)),
    "RESULT_TTL": (*_NUMBER, type(None)),
    "MAX_PAYLOAD_BYTES": (int,),
    "LEASE_SECONDS": _NUMBER,
    "HEARTBEAT_SECONDS": _NUMBER,
    "POLL_INTERVAL": _NUMBER,
    "LISTEN_NOTIFY": (bool,),
    "REDIS_CACHE": (str, type(None)),
    "WAKE_POLL_INTERVAL": _NUMBER,
    "CLAIM_BATCH_MAX": (int,),
    "FLUSH_INTERVAL": _NUMBER,
    "PRUNE_BATCH": (int,),
    "BURST_HORIZON": _NUMBER,
    "ASYNC_CONCURRENCY": (int,),
    "PROGRESS_INTERVAL": _NUMBER,
    "QUEUES": (dict,),
    "REMOVE_ON_COMPLETE": (bool, int, dict, type(None)),
    "REMOVE_ON_FAIL": (bool, int, dict, type(None)),
    "DEAD_LETTER_TTL": (*_NUMBER, type(None)),
    "WORKER_TTL": (*_NUMBER, type(None)),
    "INLINE": (bool,),
    "INLINE_RAISE": (bool,),
    "SCHEDULES": (dict,),
}
#: Settings whose integers may be 0 (a count of jobs to keep).
_ZERO_ALLOWED = ("DEFAULT_PRIORITY", "REMOVE_ON_COMPLETE", "REMOVE_ON_FAIL")
_BACKOFFS = ("fixed", "exponential")
#: Queue names: what ``@background(queue=...)`` and ``DEFAULT_QUEUE`` accept.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


def _check(key: str, value: Any) -> None:
    if key not in _TYPES:
        known = ", ".join(sorted(_TYPES))
        raise BgJobsImproperlyConfigured(
            f"BGJOBS[{key!r}] is not a setting of django-bgjobs (known: {known})."
        )
    types = _TYPES[key]
    bad_bool = isinstance(value, bool) and bool not in types
    if bad_bool or not isinstance(value, types):
        names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise BgJobsImproperlyConfigured(
            f"BGJOBS[{key!r}] must be {names}, got {type(value).__name__} {value!r}."
        )
    _check_value(key, value)


def _check_value(key: str, value: Any) -> None:
    if key == "DEFAULT_PRIORITY" and not -100 <= value <= 100:
        raise BgJobsImproperlyConfigured(
            f"BGJOBS['DEFAULT_PRIORITY'] must be from -100 to 100, got {value!r}."
        )
    positive = isinstance(value, int | float) and not isinstance(value, bool)
    if positive and key not in _ZERO_ALLOWED and value <= 0:
        raise BgJobsImproperlyConfigured(
            f"BGJOBS[{key!r}] must be greater than 0, got {value!r}."
        )
    if key == "DEFAULT_QUEUE" and not QUEUE_NAME.fullmatch(value):
        raise BgJobsImproperlyConfigured(
            "BGJOBS['DEFAULT_QUEUE'] must be 1-100 letters, digits, '_', '-', '.' "
            f"or ':', got {value!r}."
        )
    if key == "DEFAULT_BACKOFF" and value not in _BACKOFFS:
        raise BgJobsImproperlyConfigured(
            f"BGJOBS['DEFAULT_BACKOFF'] must be one of {_BACKOFFS}, got {value!r}."
        )


@functools.cache
def get_settings() -> Settings:
    """Return the validated ``BGJOBS`` settings.

    Raise ``ImproperlyConfigured`` if a key is unknown or a value has the wrong
    type.
    """
    raw = getattr(django_settings, "BGJOBS", None) or {}
    if not isinstance(raw, dict):
        raise BgJobsImproperlyConfigured(
            f"settings.BGJOBS must be a dict, got {type(raw).__name__}."
        )
    for key, value in raw.items():
        _check(key, value)
    if "QUEUES" in raw:
        raw = {**raw, "QUEUES": parse_queues(raw["QUEUES"], QUEUE_NAME)}
    for key in ("REMOVE_ON_COMPLETE", "REMOVE_ON_FAIL"):
        if key in raw:
            raw = {**raw, key: parse_retention(raw[key], f"BGJOBS[{key!r}]")}
    return Settings(**raw)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "BGJOBS":
        get_settings.cache_clear()
