"""Retention: the seed's ``removeOnComplete`` / ``removeOnFail`` by age and by
count, per task, per queue and for all jobs, and the age of dead letters."""

import datetime as dt
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from django_bgjobs.broker import get_broker
from django_bgjobs.broker.pruning import Cuts, prune_dead_letters, prune_workers
from django_bgjobs.conf import get_settings
from django_bgjobs.exceptions import InvalidJob
from django_bgjobs.models import DeadLetter, Job, Worker
from django_bgjobs.retention import KEEP, REMOVE, Retention, parse_retention
from django_bgjobs.status import JobStatus
from django_bgjobs.worker.maintenance import Maintenance
from tests import jobs
from tests.broker.test_conformance import failure, success

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        (True, REMOVE),
        (False, KEEP),
        (1000, Retention(count=1000)),
        (0, Retention(count=0)),
        ({"age": 3600, "count": 1000}, Retention(age=3600.0, count=1000)),
        ({"age": 86400}, Retention(age=86400.0)),
        (None, None),
    ],
)
def test_policies_parse_as_bullmq_declares_them(value, policy):
    assert parse_retention(value, "remove_on_complete") == policy


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "must be an integer >= 0"),
        ({"age": -5}, r"\['age'\] must be a number of seconds >= 0"),
        ({"count": 1.5}, r"\['count'\] must be an integer >= 0"),
        ({"days": 3}, "takes 'age' \\(seconds\\) and/or 'count'"),
        ({}, "takes 'age'"),
        ("1h", "must be True, False, a count of jobs to keep"),
    ],
)
def test_bad_policies_are_named(value, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_retention(value, "BGJOBS['REMOVE_ON_FAIL']")


def test_settings_and_queues_declare_policies(settings):
    settings.BGJOBS = {
        "REMOVE_ON_COMPLETE": {"age": 3600, "count": 1000},
        "REMOVE_ON_FAIL": False,
        "DEAD_LETTER_TTL": 30 * 86400,
        "QUEUES": {
            "sms": {"remove_on_complete": 50, "rate": "30/s"},
            "bulk": {"remove_on_fail": True},
        },
    }
    conf = get_settings()
    complete, fail = conf.REMOVE_ON_COMPLETE, conf.REMOVE_ON_FAIL
    assert complete == Retention(age=3600.0, count=1000)
    assert fail == KEEP
    assert conf.QUEUES["sms"].remove_on_complete == Retention(count=50)
    assert conf.QUEUES["sms"].limited
    assert not conf.QUEUES["bulk"].limited  # a policy is no limit
    settings.BGJOBS = {"QUEUES": {"sms": {"remove_on_complete": "soon"}}}
    with pytest.raises(
        ImproperlyConfigured, match=r"\['sms'\]\['remove_on_complete'\]"
    ):
        get_settings()


@pytest.mark.parametrize(
    ("policy", "text"),
    [
        (REMOVE, "remove failed at once"),
        (Retention(age=0.0, count=5), "remove failed at once"),
        (KEEP, "keep failed"),
        (Retention(count=0), "keep no failed"),
        (Retention(count=50), "keep failed newest 50"),
        (Retention(age=90.0), "keep failed 90s"),
        (Retention(age=0.25), "keep failed 250ms"),
        (Retention(age=7 * 86400.0, count=1000), "keep failed 7d / newest 1000"),
        (Retention(age=5400.0, count=3), "keep failed 90m / newest 3"),
    ],
)
def test_policies_describe_themselves(policy, text):
    assert policy.describe("failed") == text
    assert str(policy) == text.replace("failed", "finished jobs")


def test_task_options_are_checked_at_enqueue(db):
    with pytest.raises(InvalidJob, match="remove_on_fail must be True, False"):
        jobs.add.using().options.merged(remove_on_fail="never").validate()


# -- age ----------------------------------------------------------------------


def run(spec, status=JobStatus.SUCCEEDED, queue=None, *args):
    """Enqueue ``spec``, claim it, record ``status`` at T0; return the row."""
    if queue:
        spec = spec.using(queue=queue)
    job_id = spec.enqueue(*args).id
    broker = get_broker()
    [claimed] = broker.claim(None, 1, "w", timezone.now(), 30)
    assert claimed.id == job_id
    record = (
        success(claimed, at=T0)
        if status == JobStatus.SUCCEEDED
        else failure(claimed, at=T0)
    )
    broker.record([record])
    return Job.objects.get(id=job_id)


@pytest.mark.django_db
def test_the_most_specific_age_wins(settings):
    settings.BGJOBS = {
        **settings.BGJOBS,
        "RESULT_TTL": 7,
        "REMOVE_ON_COMPLETE": {"age": 100},
        "QUEUES": {"short": {"remove_on_complete": {"age": 10}}},
    }
    # The task's own policy, whatever its queue says.
    assert run(jobs.kept_two, JobStatus.SUCCEEDED, "short", 1).expires_at is None
    assert run(jobs.kept_two, JobStatus.FAILED, "short", 1).expires_at == (
        T0 + dt.timedelta(hours=1)
    )
    assert run(jobs.removed_at_once, JobStatus.SUCCEEDED, None, 1).expires_at == T0
    # The queue's, then BGJOBS's.
    assert run(jobs.add, JobStatus.SUCCEEDED, "short", 1, 2).expires_at == (
        T0 + dt.timedelta(seconds=10)
    )
    assert run(jobs.add, JobStatus.SUCCEEDED, None, 1, 2).expires_at == (
        T0 + dt.timedelta(seconds=100)
    )
    # No policy for failures: RESULT_TTL, as before.
    assert run(jobs.add, JobStatus.FAILED, None, 1, 2).expires_at == (
        T0 + dt.timedelta(seconds=7)
    )


# -- count --------------------------------------------------------------------


def finished(task, n, queue="default", status=JobStatus.SUCCEEDED):
    return [
        Job.objects.create(
            task=task,
            queue=queue,
            status=status,
            finished_at=T0 + dt.timedelta(seconds=i),
        ).id
        for i in range(n)
    ]


@pytest.mark.django_db
def test_counts_keep_the_newest_of_each_scope(settings):
    settings.BGJOBS = {
        **settings.BGJOBS,
        "REMOVE_ON_COMPLETE": 3,
        "QUEUES": {"sms": {"remove_on_complete": 1}},
    }
    own = finished(jobs.kept_two.name, 5, queue="sms")  # the task's count: 2
    sms = finished(jobs.add.name, 4, queue="sms")  # the queue's: 1
    other = finished(jobs.add.name, 6)  # BGJOBS's: 3
    failed = finished(jobs.add.name, 4, status=JobStatus.FAILED)  # no count
    running = Job.objects.create(task=jobs.add.name, status=JobStatus.RUNNING).id
    deleted = get_broker().prune(timezone.now(), batch=1000)
    left = set(Job.objects.values_list("id", flat=True))
    assert left == {*own[-2:], *sms[-1:], *other[-3:], *failed, running}
    assert deleted == 3 + 3 + 3


@pytest.mark.django_db
def test_count_pruning_goes_in_batches(settings):
    settings.BGJOBS = {**settings.BGJOBS, "REMOVE_ON_COMPLETE": 2}
    ids = finished(jobs.add.name, 12)
    broker = get_broker()
    assert broker.prune(timezone.now(), batch=4) == 4
    assert broker.prune(timezone.now(), batch=4) == 4
    assert broker.prune(timezone.now(), batch=4) == 2
    assert broker.prune(timezone.now(), batch=4) == 0
    assert set(Job.objects.values_list("id", flat=True)) == set(ids[-2:])


@pytest.mark.django_db
def test_dead_letters_go_after_their_own_ttl_only():
    now = timezone.now()
    old = DeadLetter.objects.create(
        task="t", queue="q", reason="x", created_at=now - dt.timedelta(days=31)
    )
    new = DeadLetter.objects.create(task="t", queue="q", reason="x", created_at=now)
    broker = get_broker()
    assert prune_dead_letters(broker, now, None, 100) == 0
    assert prune_dead_letters(broker, now, 30 * 86400, 100) == 1
    assert list(DeadLetter.objects.values_list("id", flat=True)) == [new.id]
    assert not DeadLetter.objects.filter(id=old.id).exists()


@pytest.mark.django_db
def test_old_workers_rows_go_after_worker_ttl_and_live_ones_stay(settings):
    now = timezone.now()
    days = dt.timedelta(days=1)

    def worker(name, **times):
        return Worker.objects.create(
            id=f"host:{name}", host="host", pid=1, concurrency=1, **times
        )

    live = worker("live", started_at=now - 30 * days)
    worker("stopped-old", stopped_at=now - 8 * days)
    worker("lost-old", lost_at=now - 8 * days)
    stopped_new = worker("stopped-new", stopped_at=now - 6 * days)
    broker = get_broker()

    assert prune_workers(broker, now, None, 100) == 0
    assert Worker.objects.count() == 4
    assert prune_workers(broker, now, 7 * 86400, 1) == 1  # one batch
    assert prune_workers(broker, now, 7 * 86400, 100) == 1
    assert set(Worker.objects.values_list("id", flat=True)) == {
        live.id,
        stopped_new.id,
    }
    # The maintenance pass prunes them with the default WORKER_TTL (7 days).
    worker("stopped-older", stopped_at=now - 9 * days)
    Maintenance("me:1:prune", broker.using).prune(broker, now, budget=1.0)
    assert not Worker.objects.filter(id="host:stopped-older").exists()


@pytest.mark.django_db
def test_worker_ttl_is_checked(settings):
    settings.BGJOBS = {**settings.BGJOBS, "WORKER_TTL": 0}
    with pytest.raises(ImproperlyConfigured, match="WORKER_TTL"):
        get_settings()


@pytest.mark.django_db
def test_a_prune_pass_goes_batch_after_batch_until_nothing_is_left(settings):
    # One batch per pass would delete PRUNE_BATCH rows per heartbeat at most,
    # slower than a busy queue finishes jobs.
    settings.BGJOBS = {**settings.BGJOBS, "REMOVE_ON_COMPLETE": 2, "PRUNE_BATCH": 3}
    ids = finished(jobs.add.name, 12)
    now = timezone.now()
    old = [
        DeadLetter.objects.create(
            task="t", queue="q", reason="x", created_at=now - dt.timedelta(days=9)
        )
        for _ in range(7)
    ]
    settings.BGJOBS = {**settings.BGJOBS, "DEAD_LETTER_TTL": 86400}
    maintenance = Maintenance("me:1:prune", get_broker().using)

    assert maintenance.prune(get_broker(), now, budget=60.0) == 10 + 7
    assert set(Job.objects.values_list("id", flat=True)) == set(ids[-2:])
    assert not DeadLetter.objects.filter(id__in=[d.id for d in old]).exists()


@pytest.mark.django_db
def test_a_prune_pass_stops_at_its_budget_and_at_shutdown(settings):
    settings.BGJOBS = {**settings.BGJOBS, "REMOVE_ON_COMPLETE": 0, "PRUNE_BATCH": 4}
    finished(jobs.add.name, 12)
    maintenance = Maintenance("me:1:prune", get_broker().using)

    assert maintenance.prune(get_broker(), timezone.now(), budget=0.0) == 4
    maintenance.done.set()
    assert maintenance.prune(get_broker(), timezone.now(), budget=60.0) == 4
    assert Job.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_pruning_skips_a_row_another_transaction_holds():
    # A job an operator is retrying at that moment (its row locked) is left
    # for a later batch, never deleted under the operator's feet.
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("the database has no SKIP LOCKED (SQLite locks the file)")
    past = timezone.now() - dt.timedelta(seconds=1)
    held, free = (
        Job.objects.create(
            task=jobs.add.name, status=JobStatus.SUCCEEDED, expires_at=past
        ).id
        for _ in range(2)
    )
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Job.objects.select_for_update().get(id=held)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert get_broker().prune(timezone.now(), batch=10) == 1
        assert set(Job.objects.values_list("id", flat=True)) == {held}
    finally:
        release.set()
        holder.join()
    assert get_broker().prune(timezone.now(), batch=10) == 1
    assert not Job.objects.filter(id__in=[held, free]).exists()


@pytest.mark.django_db
def test_a_count_cut_is_reused_within_its_ttl_and_keeps_more_never_fewer(settings):
    # Finding a cut reads `count` index entries; the maintenance loop keeps
    # it for a while. Jobs that finish meanwhile only make the old cut keep
    # more than the count.
    settings.BGJOBS = {**settings.BGJOBS, "REMOVE_ON_COMPLETE": 2}
    broker = get_broker()
    first = finished(jobs.add.name, 5)
    cuts = Cuts(ttl=3600.0)
    assert broker.prune(timezone.now(), batch=100, cuts=cuts) == 3
    later = [
        Job.objects.create(
            task=jobs.add.name,
            status=JobStatus.SUCCEEDED,
            finished_at=T0 + dt.timedelta(minutes=5, seconds=i),
        ).id
        for i in range(3)
    ]
    assert broker.prune(timezone.now(), batch=100, cuts=cuts) == 0
    assert set(Job.objects.values_list("id", flat=True)) == {*first[-2:], *later}
    assert broker.prune(timezone.now(), batch=100, cuts=Cuts(ttl=0.0)) == 3
    assert set(Job.objects.values_list("id", flat=True)) == set(later[-2:])
