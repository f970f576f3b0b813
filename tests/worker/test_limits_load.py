"""Issue 4, acceptance 2 and 3: limits hold across 2 supervisors x 2 processes
x 8 threads of real ``runworkers``, with and without Redis.

A start is a claim: ``Attempt.started_at`` is the claim's time, the time the
limits count. Windows are half-open, ``[t, t + 1 s)``.
"""

import bisect
import datetime as dt
import itertools
import json
import sys
import uuid

import pytest

from django_bgjobs.models import Attempt, Job
from django_bgjobs.status import JobStatus
from tests import jobs
from tests.worker.test_supervisor import START_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FLAGS = ("--processes", "2", "--concurrency", "8")


def most_in_any_window(times, window=dt.timedelta(seconds=1)):
    """Return the most starts in any half-open window of ``window``."""
    times = sorted(times)
    return max(
        (bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)),
        default=0,
    )


def test_most_in_any_window_counts_half_open_windows():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    at = [t0 + dt.timedelta(seconds=s) for s in (0, 0.5, 0.999, 1.0, 1.2)]
    assert most_in_any_window(at) == 4  # 0.5, 0.999, 1.0, 1.2
    assert most_in_any_window([*at[:3], t0 + dt.timedelta(seconds=1)]) == 3


def start_two(start_worker_with, queues, **conf):
    overrides = json.dumps({"QUEUES": queues, **conf})
    return [start_worker_with(*FLAGS, BGJOBS_OVERRIDES=overrides) for _ in range(2)]


def starts_of(queue):
    return list(
        Attempt.objects.filter(job__queue=queue).values_list("started_at", flat=True)
    )


@pytest.mark.parametrize(
    "redis",
    [
        pytest.param(False, id="database"),
        pytest.param(True, id="redis", marks=pytest.mark.redis),
    ],
)
def test_queue_rate_holds_across_two_supervisors(start_worker_with, wait_until, redis):
    """150 jobs at 10/s: at least 14 s of saturation. With Redis the workers
    run the first 11 s in ``both`` mode and the rest on the Lua script."""
    queue = f"rated-{uuid.uuid4().hex[:6]}"
    conf = {"REDIS_CACHE": "bgjobs"} if redis else {}
    total = 150
    jobs.sleeper.using(queue=queue).enqueue_many([((0.01,), {})] * total)
    start_two(start_worker_with, {queue: {"rate": "10/s"}}, **conf)
    wait_until(
        lambda: (
            Job.objects.filter(queue=queue, status=JobStatus.SUCCEEDED).count() == total
        ),
        timeout=START_TIMEOUT + 40,
        message="every rate-limited job to succeed",
    )
    starts = starts_of(queue)
    assert len(starts) == total  # one attempt each: none failed or re-ran
    span = (max(starts) - min(starts)).total_seconds()
    most = most_in_any_window(starts)
    workers = Attempt.objects.filter(job__queue=queue).values("worker").distinct()
    print(
        f"\nrate 10/s ({'redis' if redis else 'database'}): {total} starts over "
        f"{span:.2f} s ({total / span:.2f}/s), most in any 1 s window: {most}, "
        f"worker processes: {workers.count()}",
        file=sys.stderr,
    )
    assert most <= 10
    assert span >= (total / 10) - 1  # 15 full windows need 14 s at least
    assert span < (total / 10) + 4, "the queue was not kept saturated"
    assert workers.count() >= 3, "the claims were not spread over the processes"


def test_key_concurrency_of_one_never_overlaps(start_worker_with, wait_until):
    """6 customers x 25 jobs of 20 ms, one at a time per customer."""
    queue = f"perkey-{uuid.uuid4().hex[:6]}"
    spec = jobs.keyed_by_customer.using(queue=queue)
    per_key, keys = 25, 6
    spec.enqueue_many(
        [((customer, 0.02), {}) for _ in range(per_key) for customer in range(keys)]
    )
    start_two(start_worker_with, {queue: {"key_concurrency": 1}})
    wait_until(
        lambda: (
            Job.objects.filter(queue=queue, status=JobStatus.SUCCEEDED).count()
            == per_key * keys
        ),
        timeout=START_TIMEOUT + 40,
        message="every keyed job to succeed",
    )
    runs = Attempt.objects.filter(job__queue=queue).values_list(
        "job__limit_key", "started_at", "finished_at"
    )
    by_key = {}
    for key, started, finished in runs:
        by_key.setdefault(key, []).append((started, finished))
    assert len(by_key) == keys
    for key, spans in by_key.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two runs of {key} overlap"
    # Different keys did run side by side, or the test proves nothing.
    events = sorted(
        [(s, 1) for _, s, _ in runs] + [(f, -1) for _, _, f in runs],
        key=lambda e: (e[0], e[1]),
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    first = min(s for _, s, _ in runs)
    last = max(f for _, _, f in runs)
    print(
        f"\nkey concurrency 1: {per_key * keys} runs of {keys} keys in "
        f"{(last - first).total_seconds():.2f} s, at most {most} at once",
        file=sys.stderr,
    )
    assert 1 < most <= keys
