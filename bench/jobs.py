"""The jobs the benchmark runs.

``bench.noop`` does nothing, so its figures measure the queue's own cost
(claim, thread handoff, record). ``bench.incr`` makes one Redis round trip
(``INCR``), the job body of the peer benchmarks (Celery, BullMQ), so that
the work is the same in every row.
"""

import os
import threading

from django_bgjobs import background

#: Redis of the ``bench.incr`` counter: a database of its own (Celery's
#: reference drain uses 11, BullMQ's 12).
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
#: The counter's key; ``bench/run.py`` gives each bench database its own.
COUNTER = os.environ.get("BENCH_INCR_KEY", "bench:incr")

_client = None
_client_lock = threading.Lock()


def redis_client():
    """The process's one Redis client, created at first use."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                import redis

                _client = redis.Redis.from_url(REDIS_URL)
    return _client


@background(name="bench.noop")
def noop():
    return None


@background(name="bench.incr")
def incr():
    """One ``INCR`` round trip to Redis."""
    redis_client().incr(COUNTER)


@background(name="bench.sleep", attempts=10)
def sleep(seconds: float) -> float:
    """Hold a worker thread for ``seconds``: a job to kill in the middle."""
    import time

    time.sleep(seconds)
    return seconds
