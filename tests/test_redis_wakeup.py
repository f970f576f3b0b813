"""Redis wake-ups: a publish after commit, a listener per worker process, and
the guard that turns a Redis outage into slower wake-ups, never a failure."""

import contextlib
import json
import logging
import threading
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import transaction

from django_bgjobs.models import Job
from django_bgjobs.redis_guard import channel, client
from django_bgjobs.status import JobStatus
from django_bgjobs.wakeup import Listeners, get_listener, redis_pubsub
from tests import jobs

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_wakeups(settings):
    settings.BGJOBS = {**settings.BGJOBS, "REDIS_CACHE": "bgjobs"}
    guard = redis_pubsub._publisher
    guard.reset()
    yield
    guard.reset()


def subscriber():
    pubsub = client("bgjobs").pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel("bgjobs", "wake"))
    pubsub.get_message(timeout=2.0)  # the subscription's confirmation
    return pubsub


def messages_until(pubsub, last, timeout=10.0):
    seen = []
    for _ in range(int(timeout * 10)):
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "message":
            seen.append(message["data"].decode())
            if seen[-1] == last:
                return seen
    raise AssertionError(f"no message {last!r} within {timeout} s: {seen}")


def test_enqueue_publishes_after_commit_only(redis_wakeups):
    tag = uuid.uuid4().hex[:8]
    pubsub = subscriber()
    try:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            jobs.noop.using(queue=f"rolled-back-{tag}").enqueue()
            raise RuntimeError("roll back")
        with transaction.atomic():
            jobs.noop.using(queue=f"a-{tag}").enqueue_many([((), {})] * 3)
            jobs.noop.using(queue=f"a-{tag}").enqueue()
        jobs.noop.using(queue=f"end-{tag}").enqueue()
        seen = [m for m in messages_until(pubsub, f"end-{tag}") if tag in m]
        assert seen == [f"a-{tag}", f"end-{tag}"]
    finally:
        pubsub.close()


def test_enqueue_with_redis_down_logs_once_and_loses_nothing(settings, caplog):
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6390/0",  # nothing listens here
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1},
        },
    }
    settings.BGJOBS = {**settings.BGJOBS, "REDIS_CACHE": "dead"}
    guard = redis_pubsub._publisher
    guard.reset()
    try:
        with caplog.at_level(logging.ERROR, logger="django_bgjobs.redis"):
            handles = [jobs.noop.enqueue() for _ in range(3)]
        assert Job.objects.filter(id__in=[h.id for h in handles]).count() == 3
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1, lines
        assert lines[0].startswith("Redis unavailable for wake-ups, falling back")
    finally:
        guard.reset()


def test_listener_wakes_for_its_queues_and_resubscribes(redis_wakeups, wait_until):
    woken = threading.Event()
    listener = get_listener("default", ["mine"], woken.set)
    if isinstance(listener, Listeners):  # PostgreSQL: NOTIFY and Redis
        listener = next(x for x in listener.listeners if x.name == "Redis")
    assert listener.name == "Redis"
    listener.start()
    try:
        wait_until(lambda: listener.connected, message="the subscription")
        wait_until(woken.is_set, message="the wake-up after subscribing")
        woken.clear()
        redis_pubsub.publish("bgjobs", ["other"])
        redis_pubsub.publish("bgjobs", ["mine"])
        wait_until(woken.is_set, message="a wake-up for queue 'mine'")

        # Cut the subscriber's connection from the server side.
        client("bgjobs").client_kill_filter(_type="pubsub")
        wait_until(
            lambda: listener.connected and not listener.guard.down,
            message="the listener to subscribe again",
        )
        woken.clear()
        redis_pubsub.publish("bgjobs", ["mine"])
        wait_until(woken.is_set, message="a wake-up after subscribing again")
    finally:
        listener.stop()
    assert not listener.thread.is_alive()


def test_redis_cache_must_name_a_django_redis_cache(settings):
    settings.BGJOBS = {**settings.BGJOBS, "REDIS_CACHE": "default"}  # locmem
    with pytest.raises(SystemCheckError, match=r"bgjobs\.E003"):
        call_command("check")
    settings.BGJOBS = {**settings.BGJOBS, "REDIS_CACHE": "missing"}
    with pytest.raises(SystemCheckError, match="which is not in CACHES"):
        call_command("check")


@pytest.mark.slow
def test_idle_worker_is_woken_through_redis(start_worker_with, wait_until):
    # A 30 s poll and no NOTIFY: only Redis can start the job in time.
    overrides = {
        "POLL_INTERVAL": 30,
        "WAKE_POLL_INTERVAL": 30,
        "LISTEN_NOTIFY": False,
        "REDIS_CACHE": "bgjobs",
    }
    first = jobs.noop.enqueue()
    start_worker_with(BGJOBS_OVERRIDES=json.dumps(overrides))
    wait_until(
        lambda: first.refresh().status == JobStatus.SUCCEEDED,
        timeout=30,
        message="the worker's first claim",
    )
    # The job is enqueued from here, so its publish must reach the worker.
    with override_redis_cache():
        woken = jobs.noop.enqueue()
    wait_until(
        lambda: woken.refresh().status == JobStatus.SUCCEEDED,
        timeout=10,
        message="the job announced through Redis",
    )


@contextlib.contextmanager
def override_redis_cache():
    from django.test import override_settings

    from tests import settings as test_settings

    with override_settings(BGJOBS={**test_settings.BGJOBS, "REDIS_CACHE": "bgjobs"}):
        yield
