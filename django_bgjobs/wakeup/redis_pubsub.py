"""Redis wake-ups, when ``BGJOBS["REDIS_CACHE"]`` names a django-redis cache.

``publish`` sends the queue names on the channel ``<prefix>bgjobs:wake``
after the enqueue's transaction commits (``transaction.on_commit``), and a
worker that records a retry or a release publishes too. ``RedisListener``
subscribes on a connection of its own. Redis down costs only speed: the
publisher skips it (``RedisGuard``) and the workers poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..redis_guard import RedisGuard, channel, client
from .base import ThreadListener

logger = logging.getLogger("django_bgjobs.worker")

_publisher = RedisGuard("wake-ups")


def publish(alias: str, queues: Iterable[str]) -> None:
    """Publish each of ``queues`` on the wake-up channel of cache ``alias``."""
    names = sorted(set(queues))
    if not names:
        return

    def send() -> None:
        pipe = client(alias).pipeline(transaction=False)
        target = channel(alias, "wake")
        for name in names:
            pipe.publish(target, name)
        pipe.execute()

    _publisher.call(send, None)


class RedisListener(ThreadListener):
    name = "Redis"
    thread_name = "bgjobs-redis-listener"

    def __init__(
        self,
        alias: str,
        queues: Sequence[str] | None,
        on_wake: Callable[[], None],
    ) -> None:
        from redis.exceptions import RedisError

        super().__init__(queues, on_wake)
        self.errors = (RedisError, OSError)
        self.alias = alias
        self.guard = RedisGuard("the wake-up listener")
        self.pubsub: Any = None

    def listen(self) -> None:
        self.pubsub = client(self.alias).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel(self.alias, "wake"))
        # The subscription is confirmed by the first read.
        self.pubsub.get_message(timeout=1.0)
        self.subscribed()
        while not self.done.is_set():
            message = self.pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            if self.wants(data.decode() if isinstance(data, bytes) else str(data)):
                self.on_wake()

    def lost(self, error: BaseException) -> None:
        self.guard.failed(error)

    def back(self) -> None:
        self.guard.succeeded()

    def close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is None:
            return
        try:
            pubsub.close()
        except Exception:
            logger.debug("closing the Redis subscription failed", exc_info=True)
