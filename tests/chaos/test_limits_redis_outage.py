"""Issue 4, acceptance 4: Redis killed in the middle of a rate-limited run and
started again. Every job succeeds once, the workers keep running, and the
limits hold throughout: on the Lua script before, on the database during, and
on both after (the warm-up), across 2 supervisors x 2 processes x 8 threads."""

import itertools
import json
import time

import pytest

from django_bgjobs.models import Attempt
from django_bgjobs.status import JobStatus
from tests import chaos_jobs
from tests.models import ChaosRun
from tests.worker.test_limits_load import most_in_any_window

from .conftest import OVERRIDES
from .harness import status_counts, wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.postgresql,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

RATED, KEYED, KEYS = 250, 150, 5
#: Seconds before Redis is stopped: past the 11 s warm-up, so the workers
#: decide on the Lua script alone when Redis goes.
WARM = 13.0


def enqueue_keyed(first, count):
    for n in range(first, first + count):
        spec = chaos_jobs.chaos_run.using(queue="keyed", limit_key=f"c{n % KEYS}")
        spec.enqueue(RATED + n)


def test_limits_hold_while_redis_goes_and_comes_back(chaos_workers, bgjobs_faults):
    conf = {
        **OVERRIDES,
        "REDIS_CACHE": "bgjobs",
        "QUEUES": {"rated": {"rate": "10/s"}, "keyed": {"key_concurrency": 1}},
    }
    chaos_jobs.chaos_run.using(queue="rated").enqueue_many(
        [((n,), {}) for n in range(RATED)]
    )
    flags = ("--processes", "2", "--concurrency", "8")
    env = {"BGJOBS_OVERRIDES": json.dumps(conf)}
    workers = [chaos_workers(*flags, **env) for _ in range(2)]
    for each in workers:
        each.wait_for_children(2)
    enqueue_keyed(0, KEYED // 3)
    time.sleep(WARM)
    try:
        bgjobs_faults.stop_redis()
        stopped = time.monotonic()
        enqueue_keyed(KEYED // 3, KEYED // 3)
        time.sleep(5)
    finally:
        bgjobs_faults.start_redis()
    away = time.monotonic() - stopped
    enqueue_keyed(2 * KEYED // 3, KEYED - 2 * KEYED // 3)
    total = RATED + KEYED
    wait_for(
        workers[0],
        lambda: status_counts().get(JobStatus.SUCCEEDED, 0) == total,
        90,
        "every job to succeed",
    )

    assert status_counts() == {JobStatus.SUCCEEDED: total}
    assert ChaosRun.objects.count() == total, "a job ran twice"
    starts = list(
        Attempt.objects.filter(job__queue="rated").values_list("started_at", flat=True)
    )
    most = most_in_any_window(starts)
    assert most <= 10
    runs = Attempt.objects.filter(job__queue="keyed").values_list(
        "job__limit_key", "started_at", "finished_at"
    )
    by_key = {}
    for key, started, finished in runs:
        by_key.setdefault(key, []).append((started, finished))
    for key, spans in by_key.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two runs of {key} overlap"
    logs = [each.log() for each in workers]
    for each, log in zip(workers, logs, strict=True):
        assert each.alive(), log[-3000:]
        assert "Redis unavailable for rate limits" in log, log[-3000:]
        assert "Redis available again for rate limits" in log, log[-3000:]
    span = (max(starts) - min(starts)).total_seconds()
    print(
        f"\nlimits through a Redis outage of {away:.1f} s: {RATED} rated starts "
        f"over {span:.2f} s, most in any 1 s window {most}; {KEYED} keyed runs, "
        "no overlap per key"
    )
    for each in workers:
        assert each.stop() == 0, each.log()[-3000:]
