"""Rate and concurrency limits (``django_bgjobs.limits``) on a real database,
and through the Redis Lua script on a real Redis.

The claims here are called with chosen times, so the windows are exact; the
load tests with real ``runworkers`` are in tests/worker/test_limits_load.py.
"""

import datetime as dt
import threading
import time
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from django_bgjobs.broker import get_broker
from django_bgjobs.conf import QUEUE_NAME
from django_bgjobs.exceptions import InvalidJob
from django_bgjobs.limits import Limiter, Mode
from django_bgjobs.models import Job, RateSlot
from django_bgjobs.quotas import QueueLimits, Rate, parse_queues, parse_rate
from django_bgjobs.status import JobStatus
from tests import jobs

T0 = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)


def seconds(n):
    return dt.timedelta(seconds=n)


def limited(settings, redis=None, **queues):
    conf = {**settings.BGJOBS, "QUEUES": queues}
    if redis:
        conf["REDIS_CACHE"] = redis
    settings.BGJOBS = conf


DUE = T0 - dt.timedelta(seconds=60)


def make_jobs(queue, keys, run_at=DUE):
    return [
        Job.objects.create(
            task=jobs.noop.name, queue=queue, limit_key=key, run_at=run_at
        )
        for key in keys
    ]


def claim(limiter, queue, want=100, at=T0, worker="w1"):
    got = limiter.claim(queue, want, worker, at, 30)
    return got.jobs, got.retry_at


def keys_of(claimed):
    return sorted((Job.objects.get(id=job.id).limit_key or "-") for job in claimed)


# -- declaring limits ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("30/s", 30, 1.0),
        ("1000/h", 1000, 3600.0),
        ("5/10s", 5, 10.0),
        ("100 / m", 100, 60.0),
        ("2/1.5s", 2, 1.5),
        ("7/day", 7, 86400.0),
        ("250/500ms", 250, 0.5),
        ({"max": 30, "duration": 1000}, 30, 1.0),
    ],
)
def test_rates_parse(text, limit, window):
    assert parse_rate(text) == Rate(limit, window)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30", "must be like '30/s'"),
        ("30/fortnight", "must be like '30/s'"),
        ("0/s", "at least 1 job"),
        ("3/0s", "at least 1 job"),
        ({"max": 3}, "exactly 'max' and 'duration'"),
        ({"max": "3", "duration": 1000}, "'max' must be an integer"),
        (30, "must be like '30/s'"),
    ],
)
def test_bad_rates_are_named(value, message):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=message):
        parse_rate(value, "BGJOBS['QUEUES']['sms']['rate']")


def test_queues_setting_parses_and_names_its_errors(settings):
    from django.core.exceptions import ImproperlyConfigured

    from django_bgjobs.conf import get_settings

    parsed = parse_queues(
        {"sms": {"rate": "30/s"}, "orders": {"key_concurrency": 1}, "idle": {}},
        QUEUE_NAME,
    )
    assert parsed == {
        "sms": QueueLimits(rate=Rate(30, 1.0)),
        "orders": QueueLimits(key_concurrency=1),
    }
    assert parsed["sms"].describe() == "rate 30/s"
    for bad, message in [
        (
            {"sms": {"rate": "30/s", "burst": 3}},
            r"\['sms'\] has unknown key\(s\) burst",
        ),
        ({"sms": {"concurrency": 0}}, r"\['sms'\]\['concurrency'\] must be an integer"),
        ({"sms": {"concurrency": True}}, "must be an integer >= 1"),
        ({"bad name!": {"concurrency": 1}}, "a queue name is"),
        ({"sms": "30/s"}, r"\['sms'\] must be a dict"),
    ]:
        settings.BGJOBS = {"QUEUES": bad}
        with pytest.raises(ImproperlyConfigured, match=message):
            get_settings()


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(30, 1.0), "30/s"),
        (Rate(1000, 3600.0), "1000/h"),
        (Rate(5, 10.0), "5/10s"),
        (Rate(100, 60.0), "100/m"),
        (Rate(3, 7200.0), "3/2h"),
        (Rate(7, 86400.0), "7/d"),
        (Rate(2, 1.5), "2/1.5s"),
        (Rate(250, 0.5), "250/500ms"),
        (Rate(3, 1234567.0), "3/1234567s"),
    ],
)
def test_rates_print_as_declared_and_parse_back(rate, text):
    assert str(rate) == text
    assert parse_rate(text) == rate


def test_describe_names_every_declared_limit_and_the_retention():
    [orders] = parse_queues(
        {
            "orders": {
                "rate": "10/s",
                "concurrency": 4,
                "key_rate": {"max": 5, "duration": 60_000},
                "key_concurrency": 1,
                "remove_on_complete": {"age": 3600, "count": 1000},
                "remove_on_fail": True,
            }
        },
        QUEUE_NAME,
    ).values()
    assert orders.describe() == (
        "rate 10/s, concurrency 4, per key rate 5/m, per key concurrency 1; "
        "keep completed 1h / newest 1000, remove failed at once"
    )
    kept = parse_queues(
        {"q": {"remove_on_complete": False, "remove_on_fail": 0}}, QUEUE_NAME
    )
    assert kept["q"].describe() == "keep completed, keep no failed"
    only_key = parse_queues({"q": {"key_concurrency": 2}}, QUEUE_NAME)
    assert only_key["q"].describe() == "per key concurrency 2"
    assert QueueLimits().describe() == ""


def test_limit_key_is_set_at_enqueue_and_checked(db):
    handle = jobs.add.using(limit_key="customer:7").enqueue(1, 2)
    assert Job.objects.get(id=handle.id).limit_key == "customer:7"
    with pytest.raises(InvalidJob, match="limit_key must be 1-255 characters, got 256"):
        jobs.add.using(limit_key="x" * 256).enqueue(1, 2)
    assert jobs.keyed_by_customer.enqueue(42).job.limit_key == "customer:42"


# -- the database path --------------------------------------------------------


@pytest.mark.django_db
def test_queue_concurrency_counts_every_workers_running_jobs(settings):
    limited(settings, reports={"concurrency": 2})
    make_jobs("reports", [None] * 5)
    limiter = Limiter(get_broker())
    first, _ = claim(limiter, "reports", want=1, worker="other")
    assert len(first) == 1
    second, retry_at = claim(limiter, "reports")
    assert len(second) == 1  # one slot left of two
    assert retry_at is None  # a running job must end first
    assert claim(limiter, "reports")[0] == []
    Job.objects.filter(id=first[0].id).update(status=JobStatus.SUCCEEDED)
    assert len(claim(limiter, "reports")[0]) == 1


@pytest.mark.django_db
def test_key_concurrency_claims_one_job_per_key(settings):
    limited(settings, orders={"key_concurrency": 1})
    make_jobs("orders", ["a", "a", "a", "b", "b", None, None])
    limiter = Limiter(get_broker())
    first, _ = claim(limiter, "orders")
    # Jobs without a key are limited by the queue's own limits only.
    assert keys_of(first) == ["-", "-", "a", "b"]
    assert claim(limiter, "orders")[0] == []
    a = next(job for job in first if Job.objects.get(id=job.id).limit_key == "a")
    Job.objects.filter(id=a.id).update(status=JobStatus.SUCCEEDED)
    assert keys_of(claim(limiter, "orders")[0]) == ["a"]


@pytest.mark.django_db
def test_a_key_s_next_run_starts_after_the_run_that_freed_it(settings, monkeypatch):
    # The run of "a" ends (and its outcome commits) while the next claim
    # holds the queue's lock but has not read the running jobs yet: that
    # claim sees the slot free, so its job must start after the end of the
    # run that freed it, not at the time the claim took before reading.
    limited(settings, orders={"key_concurrency": 1})
    make_jobs("orders", ["a", "a"])
    limiter = Limiter(get_broker())
    (first,) = limiter.claim("orders", 100, "w1", None, 30).jobs
    real_plan = Limiter._plan

    def plan_after_the_run_ends(self, *args, **kwargs):
        Job.objects.filter(id=first.id).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now()
        )
        return real_plan(self, *args, **kwargs)

    monkeypatch.setattr(Limiter, "_plan", plan_after_the_run_ends)
    (second,) = limiter.claim("orders", 100, "w2", None, 30).jobs

    ended = Job.objects.get(id=first.id).finished_at
    assert Job.objects.get(id=second.id).started_at >= ended


@pytest.mark.django_db
def test_queue_rate_is_a_sliding_window(settings):
    limited(settings, sms={"rate": "3/s"})
    make_jobs("sms", [None] * 10)
    limiter = Limiter(get_broker())
    assert len(claim(limiter, "sms", want=2, at=T0)[0]) == 2
    assert len(claim(limiter, "sms", at=T0 + seconds(0.5))[0]) == 1
    held, retry_at = claim(limiter, "sms", at=T0 + seconds(0.9))
    assert held == []
    assert retry_at == T0 + seconds(1)  # the oldest start leaves the window
    # Windows are half-open: at T0 + 1 s the two starts of T0 have left it,
    # the one of T0 + 0.5 s has not.
    assert len(claim(limiter, "sms", at=T0 + seconds(1))[0]) == 2
    assert claim(limiter, "sms", at=T0 + seconds(1.4))[0] == []
    assert len(claim(limiter, "sms", at=T0 + seconds(1.6))[0]) == 1


@pytest.mark.django_db
def test_key_rate_holds_back_only_the_busy_key(settings):
    limited(settings, api={"key_rate": "2/m"})
    make_jobs("api", ["a", "a", "a", "a", "b"])
    limiter = Limiter(get_broker())
    first, retry_at = claim(limiter, "api")
    assert keys_of(first) == ["a", "a", "b"]
    again, retry_at = claim(limiter, "api", at=T0 + seconds(30))
    assert again == []
    assert retry_at == T0 + seconds(60)
    assert keys_of(claim(limiter, "api", at=T0 + seconds(61))[0]) == ["a", "a"]


@pytest.mark.django_db
def test_held_back_jobs_stay_ready_and_uncharged(settings):
    limited(settings, sms={"rate": "1/h"})
    make_jobs("sms", [None] * 3)
    limiter = Limiter(get_broker())
    claim(limiter, "sms")
    claim(limiter, "sms", at=T0 + seconds(5))
    waiting = Job.objects.exclude(status=JobStatus.RUNNING)
    assert [(j.status, j.attempt) for j in waiting] == [(JobStatus.READY, 0)] * 2


@pytest.mark.django_db
def test_plain_claim_leaves_limited_queues_alone(settings):
    limited(settings, sms={"rate": "1/h"})
    make_jobs("sms", [None])
    make_jobs("default", [None])
    claimed = get_broker().claim(None, 10, "w", T0, 30, exclude=["sms"])
    assert [job.queue for job in claimed] == ["default"]


@pytest.mark.django_db
def test_rate_log_is_trimmed_past_the_window(settings):
    limited(settings, sms={"rate": "2/s"})
    make_jobs("sms", [None] * 6)
    limiter = Limiter(get_broker())
    claim(limiter, "sms", at=T0)
    limiter.trimmed.clear()
    claim(limiter, "sms", at=T0 + seconds(10))
    assert list(RateSlot.objects.values_list("at", flat=True)) == [T0 + seconds(10)] * 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_exceed_the_limits(settings):
    """Eight threads, each with its own connection, claim at once."""
    limited(settings, orders={"key_concurrency": 1, "concurrency": 5, "rate": "7/h"})
    make_jobs("orders", [f"k{i % 4}" for i in range(40)])
    barrier = threading.Barrier(8)
    claimed = []

    def work(index):
        limiter = Limiter(get_broker())
        barrier.wait()
        for _ in range(5):
            claimed.extend(claim(limiter, "orders", want=2, worker=f"w{index}")[0])
        connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    running = Job.objects.filter(status=JobStatus.RUNNING)
    assert running.count() == len(claimed) == 4  # one per key, under 5 and 7
    assert sorted(running.values_list("limit_key", flat=True)) == [
        "k0",
        "k1",
        "k2",
        "k3",
    ]


# -- the Redis path -----------------------------------------------------------


def redis_limiter(warm):
    limiter = Limiter(get_broker())
    limiter.guard.reset()
    if warm:
        limiter.reachable_since = time.monotonic() - 3600
    return limiter


@pytest.mark.redis
@pytest.mark.django_db
@pytest.mark.parametrize("warm", [True, False], ids=["redis", "both"])
def test_redis_rate_window(settings, warm):
    queue = f"sms-{uuid.uuid4().hex[:8]}"
    limited(settings, redis="bgjobs", **{queue: {"rate": "3/s"}})
    make_jobs(queue, [None] * 10)
    limiter = redis_limiter(warm)
    assert limiter.mode(limiter.conf.QUEUES[queue]) == (
        Mode.REDIS if warm else Mode.BOTH
    )
    assert len(claim(limiter, queue, want=2, at=T0)[0]) == 2
    assert len(claim(limiter, queue, at=T0 + seconds(0.5))[0]) == 1
    held, retry_at = claim(limiter, queue, at=T0 + seconds(0.9))
    assert held == []
    assert retry_at == T0 + seconds(1)
    assert len(claim(limiter, queue, at=T0 + seconds(1.0001))[0]) == 2
    # Each start is in both logs, under one name.
    members = set(RateSlot.objects.values_list("member", flat=True))
    from django_bgjobs.redis_guard import channel, client

    stored = client("bgjobs").zrange(channel("bgjobs", f"rate:{queue}"), 0, -1)
    assert {m.decode() for m in stored} == members
    assert len(members) == 5


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_key_rate_blocks_the_key_and_remembers_it(settings):
    queue = f"api-{uuid.uuid4().hex[:8]}"
    limited(settings, redis="bgjobs", **{queue: {"key_rate": "2/m"}})
    make_jobs(queue, ["a", "a", "a", "a", "b"])
    limiter = redis_limiter(warm=True)
    first, _ = claim(limiter, queue)
    assert keys_of(first) == ["a", "a", "b"]
    held, retry_at = claim(limiter, queue, at=T0 + seconds(1))
    assert held == []
    assert retry_at == T0 + seconds(60)
    assert (queue, "a") in limiter.blocked
    assert keys_of(claim(limiter, queue, at=T0 + seconds(61))[0]) == ["a", "a"]


@pytest.mark.django_db
def test_redis_away_falls_back_to_the_database(settings, caplog):
    limited(settings, redis="bgjobs_away", sms={"rate": "2/s"})
    make_jobs("sms", [None] * 5)
    limiter = redis_limiter(warm=True)
    assert len(claim(limiter, "sms")[0]) == 2
    assert "Redis unavailable for rate limits" in caplog.text
    assert limiter.mode(limiter.conf.QUEUES["sms"]) is Mode.DATABASE
    assert claim(limiter, "sms", at=T0 + seconds(0.5))[0] == []
    assert len(claim(limiter, "sms", at=T0 + seconds(1.1))[0]) == 2


@pytest.mark.django_db
def test_a_paused_limited_queue_is_not_claimed(settings):
    from django_bgjobs.services.queues import pause_queues, resume_queues

    limited(settings, sms={"rate": "5/s", "concurrency": 3})
    make_jobs("sms", [None] * 4)
    limiter = Limiter(get_broker())
    pause_queues(["sms"])
    assert claim(limiter, "sms") == ([], None)
    resume_queues(["sms"])
    assert len(claim(limiter, "sms")[0]) == 3
