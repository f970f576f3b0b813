"""Redis wake-ups, when ``BGJOBS["REDIS_CACHE"]`` names a django-redis cache.

``publish`` sends the queue names on the channel ``<prefix>bgjobs:wake``
after the enqueue's transaction commits (``transaction.on_commit``), and a
worker that records a retry or a release publishes too. ``RedisListener``
subscribes on a connection of its own. Redis down costs only speed: the
publisher skips it (``RedisGuard``) and the workers poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..redis_guard import RedisGuard, channel, client
from .base import Listener

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


class RedisListener(Listener):
    name = "Redis"

    def __init__(
        self,
        alias: str,
        queues: Sequence[str] | None,
        on_wake: Callable[[], None],
    ) -> None:
        self.alias = alias
        self.queues = frozenset(queues) if queues else None
        self.on_wake = on_wake
        self.guard = RedisGuard("the wake-up listener")
        self.done = threading.Event()
        self.listening = threading.Event()
        self.pubsub: Any = None
        self.thread = threading.Thread(
            target=self._loop, name="bgjobs-redis-listener", daemon=True
        )

    @property
    def connected(self) -> bool:
        return self.listening.is_set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        from redis.exceptions import RedisError

        delay = 0.1
        while not self.done.is_set():
            try:
                self._listen()
            except (RedisError, OSError) as error:
                self.listening.clear()
                self.guard.failed(error)
                self._close()
                self.done.wait(delay)
                delay = min(delay * 2, 5.0)
        self._close()

    def _listen(self) -> None:
        self.pubsub = client(self.alias).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel(self.alias, "wake"))
        # The subscription is confirmed by the first read.
        self.pubsub.get_message(timeout=1.0)
        self.guard.succeeded()
        self.listening.set()
        self.on_wake()  # jobs may have become ready while nobody listened
        while not self.done.is_set():
            message = self.pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            queue = data.decode() if isinstance(data, bytes) else str(data)
            if self.queues is None or queue in self.queues:
                self.on_wake()

    def _close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is None:
            return
        try:
            pubsub.close()
        except Exception:
            logger.debug("closing the Redis subscription failed", exc_info=True)
