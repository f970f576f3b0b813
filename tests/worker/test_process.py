"""One worker process run in the test's own process.

``WorkerProcess.run()`` here is the real claim loop, thread pool, recorder
and heartbeat against the test database (hence transactional tests), without
the cost of a subprocess; signals sent by the recorder are observable.
"""

import datetime as dt
import threading

import pytest
from django.utils import timezone

from django_bgjobs import background, signals
from django_bgjobs.broker import get_broker
from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from django_bgjobs.worker.executor import Outcome, settle
from django_bgjobs.worker.process import ProcessOptions, Recorder, WorkerProcess
from tests import jobs

started = threading.Event()
release = threading.Event()


@background(attempts=2)
def blocks():
    """Wait until the test sets ``release``; only this module registers it."""
    started.set()
    release.wait(10)
    return "released"


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("number", "outcome", "error_class")
    )


def run_burst(**options):
    return WorkerProcess(ProcessOptions(burst=True, **options)).run()


SIGNALS = ("job_started", "job_succeeded", "job_failed", "job_retried", "job_dead")


@pytest.fixture
def received():
    """Record each outcome signal the worker sends: (name, sender, kwargs)."""
    sent = []

    def receiver(name):
        def receive(sender, signal, **kwargs):
            sent.append((name, sender, kwargs))

        return receive

    connected = [(getattr(signals, name), receiver(name)) for name in SIGNALS]
    for signal, receive in connected:
        signal.connect(receive, weak=False)
    yield sent
    for signal, receive in connected:
        signal.disconnect(receive)


@pytest.mark.django_db(transaction=True)
def test_burst_process_runs_jobs_and_sends_outcome_signals(received):
    added = jobs.add.enqueue(2, 3)
    failing = jobs.always_fails.enqueue()

    assert run_burst(concurrency=2) == 0

    assert Job.objects.get(id=added.id).result == 5
    assert Job.objects.get(id=failing.id).status == JobStatus.FAILED

    def of(name, job_id):
        return [kw for n, _, kw in received if n == name and kw["job_id"] == job_id]

    (succeeded,) = of("job_succeeded", added.id)
    assert (succeeded["result"], succeeded["queue"], succeeded["attempt"]) == (
        5,
        "default",
        1,
    )
    assert succeeded["duration"] >= 0
    assert [kw["attempt"] for kw in of("job_started", failing.id)] == [1, 2, 3]
    assert [kw["attempt"] for kw in of("job_failed", failing.id)] == [1, 2, 3]
    assert [kw["attempt"] for kw in of("job_retried", failing.id)] == [1, 2]
    (dead,) = of("job_dead", failing.id)
    assert dead["reason"] == "attempts exhausted (3): RuntimeError: boom"
    senders = {sender for name, sender, _ in received if name == "job_dead"}
    assert senders == {"tests.jobs.always_fails"}


@pytest.mark.django_db(transaction=True)
def test_burst_process_dead_letters_a_task_nobody_registered():
    job = Job.objects.create(task="tests.jobs.no_such_task", args=[1])

    assert run_burst() == 0

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    error_class = "django_bgjobs.exceptions.TaskNotRegistered"
    assert attempts_of(job.id) == [(1, AttemptOutcome.FAILED, error_class)]
    letter = DeadLetter.objects.get(job=job)
    assert "'tests.jobs.no_such_task' is not registered" in letter.reason
    assert letter.args == [1]


@pytest.mark.django_db(transaction=True)
def test_burst_process_fails_a_job_whose_result_is_not_json():
    handle = jobs.returns_set.using(attempts=1).enqueue()

    assert run_burst() == 0

    job = Job.objects.get(id=handle.id)
    assert job.status == JobStatus.FAILED
    (attempt,) = Attempt.objects.filter(job=job)
    assert attempt.error_class == "django_bgjobs.exceptions.Permanent"
    assert attempt.error_message.startswith("the job's return value: result is set")


@pytest.mark.django_db(transaction=True)
def test_burst_process_reaps_a_dead_workers_job_and_runs_it():
    handle = jobs.add.enqueue(2, 2)
    get_broker().claim(None, 1, "ghost:1:dead", timezone.now(), 30)
    Job.objects.filter(id=handle.id).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    assert run_burst() == 0

    job = Job.objects.get(id=handle.id)
    assert (job.status, job.result, job.attempt) == (JobStatus.SUCCEEDED, 4, 2)
    assert attempts_of(job.id) == [
        (1, AttemptOutcome.LOST, "WorkerLost"),
        (2, AttemptOutcome.SUCCEEDED, ""),
    ]
    assert Attempt.objects.get(job=job, number=1).worker == "ghost:1:dead"


@pytest.fixture
def blocker():
    started.clear()
    release.clear()
    yield blocks
    release.set()


@pytest.mark.django_db(transaction=True)
def test_stop_hands_back_a_job_still_running_after_the_grace(blocker):
    handle = blocker.enqueue()
    process = WorkerProcess(ProcessOptions(concurrency=1, grace=0.1))
    thread = threading.Thread(target=process.run)
    thread.start()
    assert started.wait(10), "the job did not start"

    process.stop()
    thread.join(10)

    assert not thread.is_alive()
    job = Job.objects.get(id=handle.id)
    assert (job.status, job.attempt, job.uncharged) == (JobStatus.READY, 1, 1)
    assert attempts_of(job.id) == [(1, AttemptOutcome.INTERRUPTED, "WorkerShutdown")]


@pytest.mark.django_db(transaction=True)
def test_recorder_writes_every_pending_outcome_before_it_stops():
    handles = jobs.add.enqueue_many([((i, i), {}) for i in range(5)])
    claimed_jobs = get_broker().claim(None, 5, "host:2:rec", timezone.now(), 30)
    recorder = Recorder("default", 0.005)
    recorder.thread.start()

    for job in claimed_jobs:
        recorder.put(settle(job, Outcome(value=job.args[0] * 2)))
    recorder.stop()

    rows = Job.objects.filter(id__in=[h.id for h in handles])
    assert sorted(rows.values_list("status", "result")) == [
        (JobStatus.SUCCEEDED, 2 * i) for i in range(5)
    ]
    assert Attempt.objects.filter(worker="host:2:rec").count() == 5


@pytest.mark.django_db(transaction=True)
def test_recorder_dead_letters_an_outcome_the_database_refuses_and_records_the_rest():
    jobs.add.enqueue_many([((1, 1), {}), ((2, 2), {})])
    broker = get_broker()
    claimed = sorted(
        broker.claim(None, 2, "w1", timezone.now(), 30), key=lambda job: job.id
    )
    records = [settle(job, Outcome(value=job.args[0] * 2)) for job in claimed]
    # Bypasses clean_text: a lone surrogate cannot be encoded for any database.
    records[1].error_class = "Odd"
    records[1].error_message = "bad \ud800"

    applied = Recorder(broker.using, 0.001)._record(broker, records)

    good, bad = (Job.objects.get(id=job.id) for job in claimed)
    assert [r.job.id for r in applied] == [good.id, bad.id]
    assert (good.status, good.result) == (JobStatus.SUCCEEDED, 2)
    assert bad.status == JobStatus.FAILED
    letter = DeadLetter.objects.get(job=bad)
    assert letter.reason.startswith(
        "the database refused this job's succeeded outcome: UnicodeEncodeError"
    )
