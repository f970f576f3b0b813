"""The storage contract every broker must keep, proved on a real database.

One suite: ./runtests runs it once per vendor (DATABASE_URL). Locking and
fencing are shown with real connections (threads, each on its own Django
connection), batching with query-count budgets that do not grow with the batch.
"""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_bgjobs.broker import Record, get_broker
from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests.jobs import add, keyed_echo, noop

# Exact statement counts per vendor; a batch of one and a batch of many cost
# the same. In a test's transaction, atomic() adds SAVEPOINT and RELEASE.
BUDGETS = {
    "postgresql": {
        "claim": 1,  # UPDATE ... RETURNING
        "record": 1,  # one CTE: fenced UPDATE + INSERT attempts
        "record_failures": 7,  # SAVEPOINT, SELECT ... FOR UPDATE (cancelled?),
        # CTE, SELECT history, SELECT keys, INSERT dead letters, RELEASE
        "enqueue_many": 1,  # INSERT (a trigger sends the NOTIFY)
        "enqueue_many_keyed": 4,  # SAVEPOINT, INSERT ON CONFLICT, SELECT, RELEASE
        "heartbeat": 1,  # UPDATE ... RETURNING
    },
    "mysql": {
        "claim": 2,  # SELECT ... FOR UPDATE SKIP LOCKED, UPDATE by id
        "record": 5,  # SAVEPOINT, SELECT ... FOR UPDATE, UPDATE, INSERT, RELEASE
        "record_failures": 8,  # + SELECT history, SELECT keys, INSERT dead letters
        "enqueue_many": 1,
        "enqueue_many_keyed": 4,
        "heartbeat": 2,  # SELECT ids, UPDATE by id
    },
    "sqlite": {
        "claim": 1,  # UPDATE ... RETURNING (BEGIN IMMEDIATE only in autocommit)
        "record": 4,  # SAVEPOINT, fenced UPDATE, INSERT attempts, RELEASE
        # + SELECT cancelled, SELECT history, SELECT keys, INSERT dead letters
        "record_failures": 8,
        "enqueue_many": 1,
        "enqueue_many_keyed": 4,
        "heartbeat": 1,  # UPDATE ... RETURNING
    },
}


@pytest.fixture
def budget():
    if connection.vendor not in BUDGETS:
        pytest.fail(f"no query budgets for {connection.vendor}: add them to BUDGETS")
    return BUDGETS[connection.vendor]


@pytest.fixture
def broker():
    return get_broker()


def make_job(**fields):
    fields.setdefault("task", noop.name)
    fields.setdefault("run_at", timezone.now() - dt.timedelta(minutes=1))
    return Job.objects.create(**fields)


def run_threads(count, target, timeout=60):
    """Run ``target(index)`` on ``count`` threads; return results in order.

    Each thread uses, then closes, its own database connection.
    """
    results, errors = [None] * count, []

    def run(index):
        try:
            results[index] = target(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def claim_all(broker, worker="w", now=None, limit=100, queues=None):
    return broker.claim(queues, limit, worker, now or timezone.now(), 30)


def success(job, result=None, at=None):
    return Record(
        job=job,
        status=JobStatus.SUCCEEDED,
        outcome=AttemptOutcome.SUCCEEDED,
        finished_at=at or timezone.now(),
        result=result,
    )


def failure(job, status=JobStatus.FAILED, run_at=None, reason="gave up", at=None):
    return Record(
        job=job,
        status=status,
        outcome=AttemptOutcome.FAILED,
        finished_at=at or timezone.now(),
        error_class="RuntimeError",
        error_message="boom",
        traceback="Traceback ...",
        run_at=run_at,
        reason=reason,
    )


# -- claim --


@pytest.mark.django_db
def test_claim_takes_due_jobs_by_priority_then_run_at_then_id(broker):
    now = timezone.now()

    def at(seconds):
        return now + dt.timedelta(seconds=seconds)

    low_oldest = make_job(priority=0, run_at=at(-30))
    high_newer = make_job(priority=5, run_at=at(-1))
    high_older = make_job(priority=5, run_at=at(-10))
    tie_first = make_job(priority=1, run_at=at(-5))
    tie_second = make_job(priority=1, run_at=at(-5))
    due_now = make_job(priority=-3, run_at=now)
    retry_due = make_job(priority=-5, status=JobStatus.SCHEDULED, run_at=at(-2))
    make_job(priority=100, status=JobStatus.SCHEDULED, run_at=at(60))
    make_job(priority=100, queue="other", run_at=at(-60))
    for status in (JobStatus.RUNNING, JobStatus.WAITING_CHILDREN, JobStatus.FAILED):
        make_job(priority=100, status=status, run_at=at(-60))

    order = []
    while claimed := broker.claim(["default"], 1, "w", now, 30):
        order += [job.id for job in claimed]

    expected = [high_older, high_newer, tie_first, tie_second, low_oldest, due_now]
    assert order == [job.id for job in [*expected, retry_due]]


@pytest.mark.django_db
def test_claim_takes_only_the_asked_queues_and_at_most_limit(broker):
    for queue in ("a", "b", "c"):
        make_job(queue=queue)
        make_job(queue=queue)

    claimed = claim_all(broker, queues=["a", "c"], limit=3)

    assert len(claimed) == 3
    assert {job.queue for job in claimed} <= {"a", "c"}
    assert set(Job.objects.filter(queue="b").values_list("status", flat=True)) == {
        JobStatus.READY
    }
    assert len(claim_all(broker, queues=None)) == 3


@pytest.mark.django_db
def test_claim_marks_jobs_running_with_attempt_worker_and_lease(broker):
    job = make_job(args=[1, 2], kwargs={"x": "y"}, attempt=2, uncharged=1, timeout=5)
    now = timezone.now()

    [claimed] = broker.claim(None, 10, "host:1:abc", now, 45)

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.attempt == 3
    assert job.worker == "host:1:abc"
    assert job.started_at == now
    assert job.lease_expires_at == now + dt.timedelta(seconds=45)
    assert (claimed.id, claimed.attempt, claimed.uncharged) == (job.id, 3, 1)
    assert (claimed.args, claimed.kwargs) == ([1, 2], {"x": "y"})
    assert (claimed.worker, claimed.timeout, claimed.charged) == ("host:1:abc", 5, 2)


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_job(broker):
    ids = {handle.id for handle in noop.enqueue_many([((), {})] * 500)}
    barrier = threading.Barrier(4)

    def claim_until_empty(index):
        own_broker = get_broker()
        barrier.wait(timeout=10)
        mine = []
        while batch := claim_all(own_broker, worker=f"w{index}", limit=10):
            mine += [job.id for job in batch]
        return mine

    per_thread = run_threads(4, claim_until_empty)

    claimed = [job_id for ids_of_thread in per_thread for job_id in ids_of_thread]
    assert len(claimed) == len(set(claimed)) == 500
    assert set(claimed) == ids
    workers = dict(Job.objects.values_list("id", "worker"))
    for index, ids_of_thread in enumerate(per_thread):
        assert {workers[job_id] for job_id in ids_of_thread} <= {f"w{index}"}
    assert set(Job.objects.values_list("attempt", flat=True)) == {1}


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has no row locks: one writer"
)
@pytest.mark.django_db(transaction=True)
def test_claim_skips_rows_locked_by_other_session(broker):
    locked = make_job(priority=10)
    free = make_job(priority=0)
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                list(Job.objects.select_for_update().filter(pk=locked.pk))
                holding.set()
                # Were the claim to wait for this lock, it would get the row
                # once this gives up, and the assertions below would fail.
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        claimed = claim_all(broker)
        lock_still_held = not release.is_set()
    finally:
        release.set()
        holder.join(timeout=30)

    assert lock_still_held
    assert [job.id for job in claimed] == [free.id]
    locked.refresh_from_db()
    assert (locked.status, locked.attempt) == (JobStatus.READY, 0)


# -- record: fencing --


@pytest.mark.django_db
def test_stale_attempt_completion_changes_nothing(broker):
    job = make_job()
    now = timezone.now()
    [first] = broker.claim(None, 1, "w1", now, 30)
    later = now + dt.timedelta(seconds=60)
    assert [lapsed.id for lapsed in broker.expired(later)] == [job.id]
    lost = Record(
        job=first,
        status=JobStatus.READY,
        outcome=AttemptOutcome.LOST,
        finished_at=later,
        run_at=later,
    )
    assert broker.record([lost]) == [lost]
    [second] = broker.claim(None, 1, "w2", later, 30)
    assert (first.attempt, second.attempt) == (1, 2)
    attempts_before = list(Attempt.objects.values_list("number", "outcome"))

    assert broker.record([success(first, result="stale")]) == []

    job.refresh_from_db()
    assert (job.status, job.attempt, job.worker) == (JobStatus.RUNNING, 2, "w2")
    assert job.result is None
    assert job.finished_at is None
    assert job.lease_expires_at == later + dt.timedelta(seconds=30)
    assert attempts_before == [(1, AttemptOutcome.LOST)]
    assert list(Attempt.objects.values_list("number", "outcome")) == attempts_before


@pytest.mark.django_db
def test_record_for_finished_job_changes_nothing(broker):
    job = make_job()
    [claimed] = claim_all(broker)
    broker.record([success(claimed, result=1)])

    assert broker.record([failure(claimed)]) == []

    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 1)
    assert Attempt.objects.filter(job=job).count() == 1
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
def test_record_applies_fresh_records_and_skips_stale_ones_in_one_batch(broker):
    stale_job, fresh_job = make_job(), make_job()
    claimed = {job.id: job for job in claim_all(broker)}
    stale = claimed[stale_job.id]
    Job.objects.filter(pk=stale_job.pk).update(attempt=5)
    fresh_record = success(claimed[fresh_job.id], result="ok")

    applied = broker.record([success(stale, result="late"), fresh_record])

    assert applied == [fresh_record]
    stale_job.refresh_from_db()
    fresh_job.refresh_from_db()
    assert (stale_job.status, stale_job.result) == (JobStatus.RUNNING, None)
    assert (fresh_job.status, fresh_job.result) == (JobStatus.SUCCEEDED, "ok")


# -- record: transitions --


@pytest.mark.django_db
def test_record_success_stores_result_and_releases_key_and_lease(broker):
    job = make_job(key="invoice-7", active_key="invoice-7", result_ttl=60)
    [claimed] = broker.claim(None, 1, "w1", timezone.now(), 30)
    finished = timezone.now()

    broker.record([success(claimed, result={"total": [1, 2.5]}, at=finished)])

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"total": [1, 2.5]}
    assert job.finished_at == finished
    assert job.expires_at == finished + dt.timedelta(seconds=60)
    assert (job.key, job.active_key, job.lease_expires_at) == ("invoice-7", None, None)
    attempt = Attempt.objects.get(job=job)
    assert (attempt.number, attempt.worker, attempt.outcome) == (
        1,
        "w1",
        AttemptOutcome.SUCCEEDED,
    )
    assert attempt.finished_at == finished


@pytest.mark.django_db
def test_record_retry_schedules_the_job_and_keeps_its_key(broker):
    job = make_job(key="k", active_key="k")
    [claimed] = claim_all(broker)
    run_at = timezone.now() + dt.timedelta(seconds=90)

    broker.record([failure(claimed, status=JobStatus.SCHEDULED, run_at=run_at)])

    job.refresh_from_db()
    assert (job.status, job.run_at) == (JobStatus.SCHEDULED, run_at)
    assert (job.active_key, job.finished_at, job.lease_expires_at) == ("k", None, None)
    assert job.error == "RuntimeError: boom"
    attempt = Attempt.objects.get(job=job)
    assert (attempt.outcome, attempt.error_class, attempt.error_message) == (
        AttemptOutcome.FAILED,
        "RuntimeError",
        "boom",
    )
    assert claim_all(broker) == []
    assert [again.attempt for again in claim_all(broker, now=run_at)] == [2]


@pytest.mark.django_db
def test_record_failed_writes_dead_letter_with_payload_reason_and_history(broker):
    job = make_job(
        queue="mail",
        priority=7,
        args=[1, "two"],
        kwargs={"to": "a@example.com"},
        key="mail-1",
        active_key="mail-1",
    )
    [first] = claim_all(broker, worker="w1")
    broker.record([failure(first, status=JobStatus.READY, run_at=timezone.now())])
    [second] = claim_all(broker, worker="w2")

    broker.record([failure(second, reason="attempts exhausted (2): boom")])

    job.refresh_from_db()
    assert (job.status, job.active_key) == (JobStatus.FAILED, None)
    dead = DeadLetter.objects.get()
    assert dead.job_id == job.id
    assert (dead.task, dead.queue, dead.priority) == (noop.name, "mail", 7)
    assert (dead.args, dead.kwargs, dead.key) == (
        [1, "two"],
        {"to": "a@example.com"},
        "mail-1",
    )
    assert dead.reason == "attempts exhausted (2): boom"
    assert (dead.error_class, dead.attempts) == ("RuntimeError", 2)
    assert [(h["number"], h["worker"], h["outcome"]) for h in dead.history] == [
        (1, "w1", AttemptOutcome.FAILED),
        (2, "w2", AttemptOutcome.FAILED),
    ]
    assert dead.history[1]["error_message"] == "boom"


@pytest.mark.django_db
def test_record_interrupted_returns_job_to_ready_without_charging_it(broker):
    job = make_job(max_attempts=1)
    [claimed] = claim_all(broker)
    now = timezone.now()
    interrupted = Record(
        job=claimed,
        status=JobStatus.READY,
        outcome=AttemptOutcome.INTERRUPTED,
        finished_at=now,
        run_at=now,
    )

    broker.record([interrupted])

    job.refresh_from_db()
    assert (job.status, job.attempt, job.uncharged) == (JobStatus.READY, 1, 1)
    assert job.charged_attempts == 0
    [again] = claim_all(broker)
    assert (again.attempt, again.charged) == (2, 1)


# -- query budgets --


@pytest.mark.django_db
def test_claim_query_count_does_not_grow_with_batch_size(
    broker, budget, django_assert_num_queries
):
    noop.enqueue_many([((), {})] * 51)

    with django_assert_num_queries(budget["claim"]):
        one = claim_all(broker, limit=1)
    with django_assert_num_queries(budget["claim"]):
        many = claim_all(broker, limit=50)

    assert (len(one), len(many)) == (1, 50)


@pytest.mark.django_db
def test_record_query_count_does_not_grow_with_batch_size(
    broker, budget, django_assert_num_queries
):
    noop.enqueue_many([((), {})] * 51)
    first, *rest = claim_all(broker)

    with django_assert_num_queries(budget["record"]):
        one = broker.record([success(first)])
    with django_assert_num_queries(budget["record"]):
        many = broker.record([success(job) for job in rest])

    assert (len(one), len(many)) == (1, 50)


@pytest.mark.django_db
def test_record_with_failures_query_count_does_not_grow_with_batch_size(
    broker, budget, django_assert_num_queries
):
    noop.enqueue_many([((), {})] * 51)
    first, *rest = claim_all(broker)
    mixed = [success(job) if i % 2 else failure(job) for i, job in enumerate(rest)]

    with django_assert_num_queries(budget["record_failures"]):
        one = broker.record([failure(first)])
    with django_assert_num_queries(budget["record_failures"]):
        many = broker.record(mixed)

    assert (len(one), len(many)) == (1, 50)
    assert DeadLetter.objects.count() == 26


@pytest.mark.django_db
def test_enqueue_many_query_count_does_not_grow_with_batch_size(
    budget, django_assert_num_queries
):
    with django_assert_num_queries(budget["enqueue_many"]):
        one = noop.enqueue_many([((), {})])
    with django_assert_num_queries(budget["enqueue_many"]):
        many = add.enqueue_many([((i, i), {}) for i in range(200)])

    assert (len(one), len(many)) == (1, 200)
    assert Job.objects.count() == 201


@pytest.mark.django_db
def test_keyed_enqueue_many_query_count_does_not_grow_with_batch_size(
    budget, django_assert_num_queries
):
    with django_assert_num_queries(budget["enqueue_many_keyed"]):
        one = keyed_echo.enqueue_many([(("solo",), {})])
    with django_assert_num_queries(budget["enqueue_many_keyed"]):
        many = keyed_echo.enqueue_many([((f"n{i}",), {}) for i in range(200)])

    assert (len(one), len(many)) == (1, 200)
    assert all(handle.created for handle in [*one, *many])
    assert Job.objects.filter(active_key__startswith="keyed:").count() == 201


# -- leases and maintenance --


@pytest.mark.django_db
def test_heartbeat_extends_only_the_given_workers_running_jobs(
    broker, budget, django_assert_num_queries
):
    noop.enqueue_many([((), {})] * 3)
    now = timezone.now()
    mine_running, mine_done = broker.claim(None, 2, "mine", now, 30)
    [theirs] = broker.claim(None, 1, "theirs", now, 30)
    broker.record([success(mine_done)])
    later = now + dt.timedelta(seconds=20)

    with django_assert_num_queries(budget["heartbeat"]):
        extended = broker.heartbeat("mine", later, 30)

    assert (extended.renewed, extended.cancelled) == (1, set())
    leases = dict(Job.objects.values_list("id", "lease_expires_at"))
    assert leases[mine_running.id] == later + dt.timedelta(seconds=30)
    assert leases[theirs.id] == now + dt.timedelta(seconds=30)
    assert leases[mine_done.id] is None


@pytest.mark.django_db
def test_heartbeat_reads_which_running_jobs_an_operator_cancelled(
    broker, budget, django_assert_num_queries
):
    noop.enqueue_many([((), {})] * 3)
    now = timezone.now()
    flagged, _plain = broker.claim(None, 2, "mine", now, 30)
    [theirs] = broker.claim(None, 1, "theirs", now, 30)
    ids = [flagged.id, theirs.id]
    Job.objects.filter(id__in=ids).update(cancel_requested_at=now)

    with django_assert_num_queries(budget["heartbeat"]):
        beat = broker.heartbeat("mine", now, 30)

    assert (beat.renewed, beat.cancelled) == (2, {flagged.id})


def lost_record(job):
    return Record(
        job=job,
        status=JobStatus.READY,
        outcome=AttemptOutcome.LOST,
        finished_at=timezone.now(),
        run_at=timezone.now(),
        error_class="WorkerLost",
        error_message="lease expired",
    )


@pytest.mark.django_db
def test_every_unsuccessful_run_of_a_cancelled_job_ends_cancelled(broker):
    """A retry, a dead letter or a release of a job an operator cancelled
    while it ran is recorded as ``cancelled`` instead: no retry, no dead
    letter, the key freed. A success stays a success."""
    noop.using(key="k-cancel").enqueue()
    noop.enqueue_many([((), {})] * 4)
    # A claim returns its batch in no particular order.
    claimed = sorted(claim_all(broker), key=lambda job: job.id)
    keyed, retried, lost, succeeded, untouched = claimed
    later = timezone.now() + dt.timedelta(minutes=5)
    flagged = [keyed.id, retried.id, lost.id, succeeded.id]
    Job.objects.filter(id__in=flagged).update(cancel_requested_at=timezone.now())

    applied = broker.record(
        [
            failure(keyed),
            failure(retried, status=JobStatus.SCHEDULED, run_at=later),
            lost_record(lost),
            success(succeeded, result=1),
            failure(untouched, status=JobStatus.SCHEDULED, run_at=later),
        ]
    )

    assert len(applied) == 5
    statuses = dict(Job.objects.values_list("id", "status"))
    assert statuses == {
        keyed.id: JobStatus.CANCELLED,
        retried.id: JobStatus.CANCELLED,
        lost.id: JobStatus.CANCELLED,
        succeeded.id: JobStatus.SUCCEEDED,
        untouched.id: JobStatus.SCHEDULED,
    }
    outcomes = dict(Attempt.objects.values_list("job_id", "outcome"))
    assert outcomes[keyed.id] == AttemptOutcome.CANCELLED
    assert outcomes[lost.id] == AttemptOutcome.CANCELLED
    assert outcomes[succeeded.id] == AttemptOutcome.SUCCEEDED
    assert DeadLetter.objects.count() == 0
    job = Job.objects.get(id=retried.id)
    assert job.error == (
        "JobCancelled: cancelled by an operator while running; the run ended "
        "with RuntimeError: boom"
    )
    assert job.finished_at is not None
    assert Job.objects.get(id=keyed.id).active_key is None
    assert noop.using(key="k-cancel").enqueue().created


@pytest.mark.django_db
def test_expired_returns_only_running_jobs_whose_lease_lapsed(broker):
    now = timezone.now()
    lapsed = make_job(
        status=JobStatus.RUNNING,
        attempt=1,
        worker="dead",
        lease_expires_at=now - dt.timedelta(seconds=1),
    )
    make_job(
        status=JobStatus.RUNNING,
        worker="alive",
        lease_expires_at=now + dt.timedelta(minutes=1),
    )
    make_job(status=JobStatus.READY, lease_expires_at=now - dt.timedelta(seconds=5))

    expired = broker.expired(now)

    assert [(job.id, job.worker, job.attempt) for job in expired] == [
        (lapsed.id, "dead", 1)
    ]


@pytest.mark.django_db
def test_prune_deletes_only_expired_finished_jobs_in_batches(broker):
    now = timezone.now()
    past, future = now - dt.timedelta(seconds=1), now + dt.timedelta(hours=1)
    finished = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
    gone = [make_job(status=finished[i % 3], expires_at=past) for i in range(5)]
    kept = [
        make_job(status=JobStatus.SUCCEEDED, expires_at=future),
        make_job(status=JobStatus.SUCCEEDED, expires_at=None),
        make_job(status=JobStatus.READY, expires_at=past),
    ]
    dead_job = gone[1]
    Attempt.objects.create(
        job=dead_job, number=1, started_at=past, finished_at=past, outcome="failed"
    )
    dead = DeadLetter.objects.create(
        job=dead_job, task=noop.name, queue="default", reason="gave up"
    )
    requeued = DeadLetter.objects.create(
        task=noop.name, queue="default", reason="x", requeued_job=gone[2]
    )
    other = Attempt.objects.create(
        job=kept[0], number=1, started_at=past, finished_at=past, outcome="succeeded"
    )

    removed = [broker.prune(now, batch=2) for _ in range(4)]

    assert removed == [2, 2, 1, 0]
    assert set(Job.objects.values_list("id", flat=True)) == {job.id for job in kept}
    dead.refresh_from_db()
    requeued.refresh_from_db()
    assert (dead.job_id, dead.reason) == (None, "gave up")
    assert requeued.requeued_job_id is None
    assert list(Attempt.objects.values_list("id", flat=True)) == [other.id]


@pytest.mark.django_db
def test_next_run_at_and_has_running_look_at_the_asked_queues(broker):
    now = timezone.now()
    soon, later = now + dt.timedelta(seconds=5), now + dt.timedelta(seconds=50)
    make_job(queue="a", status=JobStatus.SCHEDULED, run_at=later)
    make_job(queue="b", status=JobStatus.SCHEDULED, run_at=soon)
    make_job(queue="a", status=JobStatus.RUNNING, run_at=now - dt.timedelta(hours=1))

    assert broker.next_run_at(["a"]) == later
    assert broker.next_run_at(None) == soon
    assert broker.next_run_at(["c"]) is None
    assert broker.has_running(["a"]) is True
    assert broker.has_running(["b"]) is False


# -- idempotency keys --


@pytest.mark.django_db
def test_enqueue_with_held_key_returns_the_existing_job(broker):
    keyed = add.using(key="order-1")

    first = keyed.enqueue(1, 2)
    second = keyed.enqueue(3, 4)

    assert (first.created, second.created) == (True, False)
    assert second.id == first.id
    assert list(Job.objects.values_list("args", flat=True)) == [[1, 2]]


@pytest.mark.django_db
def test_key_is_free_again_once_its_job_finished(broker):
    keyed = add.using(key="order-2")
    first = keyed.enqueue(1, 2)
    [claimed] = claim_all(broker)
    broker.record([success(claimed, result=3)])

    again = keyed.enqueue(1, 2)

    assert again.created is True
    assert again.id != first.id
    assert Job.objects.filter(key="order-2").count() == 2
    assert Job.objects.get(active_key="order-2").id == again.id


@pytest.mark.django_db
def test_keyed_enqueue_many_returns_holders_for_taken_and_repeated_keys():
    held = keyed_echo.enqueue("a")

    handles = keyed_echo.enqueue_many([(("a",), {}), (("b",), {}), (("b",), {})])

    assert [handle.created for handle in handles] == [False, True, False]
    assert handles[0].id == held.id
    assert handles[1].id == handles[2].id
    assert Job.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_with_one_key_make_exactly_one_job():
    barrier = threading.Barrier(4)
    keys = [f"race-{n}" for n in range(5)]

    def enqueue_each_key(index):
        barrier.wait(timeout=10)
        return [
            (key, *_id_and_created(add.using(key=key).enqueue(index, 0)))
            for key in keys
        ]

    results = [row for rows in run_threads(4, enqueue_each_key) for row in rows]

    for key in keys:
        rows = [(job_id, created) for k, job_id, created in results if k == key]
        assert len({job_id for job_id, _ in rows}) == 1, key
        assert sorted(created for _, created in rows) == [False, False, False, True]
        assert Job.objects.filter(key=key).count() == 1


def _id_and_created(handle):
    return handle.id, handle.created


# -- transactional enqueue --


def _visible_to_other_connection(job_id):
    [visible] = run_threads(1, lambda _: Job.objects.filter(pk=job_id).exists())
    return visible


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_rolled_back_transaction_leaves_no_job_and_no_signal(enqueued):
    handles = []

    def enqueue_then_fail():
        with transaction.atomic():
            handles.append(noop.enqueue())
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        enqueue_then_fail()

    assert handles[0].id is not None
    assert not Job.objects.filter(pk=handles[0].id).exists()
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_committed_transaction_is_announced_on_commit(enqueued):
    with transaction.atomic():
        handle = add.using(queue="mail").enqueue(1, 2)
        assert enqueued == []
        assert _visible_to_other_connection(handle.id) is False

    assert enqueued == [(add.name, handle.id, "mail")]
    assert _visible_to_other_connection(handle.id) is True


# -- paused queues --


def pause(*names):
    from django_bgjobs.models import QueueState

    for name in names:
        QueueState.objects.update_or_create(
            name=name, defaults={"paused_at": timezone.now()}
        )


@pytest.mark.django_db
def test_claim_skips_due_jobs_of_paused_queues_and_takes_the_others(broker):
    paused_ready = make_job(queue="reports", priority=100)
    paused_retry = make_job(queue="reports", status=JobStatus.SCHEDULED)
    other = make_job(queue="default")
    pause("reports")

    claimed = claim_all(broker)
    named = claim_all(broker, queues=["reports"])

    assert [job.id for job in claimed] == [other.id]
    assert named == []
    statuses = dict(Job.objects.values_list("id", "status"))
    assert statuses[paused_ready.id] == JobStatus.READY
    assert statuses[paused_retry.id] == JobStatus.SCHEDULED


@pytest.mark.django_db
def test_a_resumed_queue_is_claimable_again(broker):
    from django_bgjobs.models import QueueState

    job = make_job(queue="reports")
    pause("reports")
    assert claim_all(broker) == []

    QueueState.objects.filter(name="reports").update(paused_at=None)

    assert [claimed.id for claimed in claim_all(broker)] == [job.id]


@pytest.mark.django_db
def test_claim_with_a_paused_queue_keeps_its_query_budget(
    broker, budget, django_assert_num_queries
):
    noop.enqueue_many([((), {})] * 5)
    noop.using(queue="paused").enqueue_many([((), {})] * 5)
    pause("paused")

    with django_assert_num_queries(budget["claim"]):
        claimed = claim_all(broker, limit=50)

    assert {job.queue for job in claimed} == {"default"}
    assert len(claimed) == 5


@pytest.mark.django_db
def test_paused_queues_are_no_work_for_next_run_at_and_has_running(broker):
    now = timezone.now()
    make_job(queue="a", status=JobStatus.SCHEDULED, run_at=now - dt.timedelta(hours=1))
    make_job(queue="a", status=JobStatus.RUNNING)
    later = now + dt.timedelta(seconds=50)
    make_job(queue="b", status=JobStatus.SCHEDULED, run_at=later)
    pause("a", "c")

    assert broker.next_run_at(None) == later
    assert broker.next_run_at(["a"]) is None
    assert broker.next_scheduled_at(None) == later
    assert broker.next_scheduled_at(["a"]) is None
    assert broker.has_running(["a"]) is False
    assert broker.has_running(None) is False
