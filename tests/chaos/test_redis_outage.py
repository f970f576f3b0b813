"""Redis stopped in the middle of a run with Redis wake-ups (issue 4,
acceptance 4, wake-up part): enqueues keep working, every job runs exactly
once, the workers keep running and fall back to polling, and wake-ups resume
when Redis is back. Rate and concurrency limits are not built yet."""

import json
import logging
import time

import pytest

from django_bgjobs.status import JobStatus
from tests import chaos_jobs
from tests.models import ChaosRun

from .conftest import OVERRIDES
from .harness import status_counts, wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.postgresql,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

BATCHES, SIZE = 30, 20


def enqueue_batches(first, count):
    for batch in range(first, first + count):
        chaos_jobs.chaos_run.enqueue_many(
            [((batch * SIZE + i,), {}) for i in range(SIZE)]
        )
        time.sleep(0.05)


def test_redis_outage_slows_wake_ups_and_loses_nothing(
    chaos_workers, bgjobs_faults, settings, caplog
):
    wakeups = {"REDIS_CACHE": "bgjobs", "LISTEN_NOTIFY": False}
    settings.BGJOBS = {**settings.BGJOBS, **wakeups}
    workers = chaos_workers(
        "--processes",
        "2",
        "--concurrency",
        "4",
        BGJOBS_OVERRIDES=json.dumps({**OVERRIDES, **wakeups}),
    )
    workers.wait_for_children(2)
    with caplog.at_level(logging.WARNING, logger="django_bgjobs.redis"):
        enqueue_batches(0, 10)
        try:
            bgjobs_faults.stop_redis()
            enqueue_batches(10, 10)  # no Redis: enqueue works, workers poll
        finally:
            bgjobs_faults.start_redis()
        enqueue_batches(20, 10)
    total = BATCHES * SIZE
    wait_for(
        workers,
        lambda: status_counts().get(JobStatus.SUCCEEDED, 0) == total,
        60,
        "every job to succeed",
    )

    assert status_counts() == {JobStatus.SUCCEEDED: total}
    assert ChaosRun.objects.count() == total, "a job ran twice"
    assert workers.alive(), workers.log()[-3000:]
    log = workers.log()
    assert "Redis unavailable for the wake-up listener" in log, log[-3000:]
    assert "Redis available again for the wake-up listener" in log, log[-3000:]
    published = [r.getMessage() for r in caplog.records]
    assert published[0].startswith("Redis unavailable for wake-ups"), published
    print(
        f"\nredis outage: jobs={total} publisher_log={published} "
        f"worker_log_lines={log.count(chr(10))}"
    )
    assert workers.stop() == 0, log[-3000:]
