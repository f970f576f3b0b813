"""``@background(atomic=True)``: the job's writes commit if and only if its
success is recorded, fenced by the attempt number like any outcome."""

import pytest
from django.db import connection
from django.utils import timezone

from django_bgjobs import InvalidJob, background, signals
from django_bgjobs.broker import get_broker
from django_bgjobs.models import Attempt, DeadLetter
from django_bgjobs.status import AttemptOutcome, JobStatus
from django_bgjobs.worker.executor import Executor, settle
from django_bgjobs.worker.process import ProcessOptions, WorkerProcess
from tests import jobs
from tests.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def claim_and_run(handle):
    broker = get_broker()
    (job,) = broker.claim(None, 1, "w-atomic", timezone.now(), 30)
    assert job.id == handle.id
    return job, Executor().run(job, broker), broker


def test_atomic_success_commits_the_writes_with_the_recorded_success():
    handle = jobs.atomic_insert.enqueue("a1")

    _, outcome, _ = claim_and_run(handle)

    assert outcome.committed
    assert outcome.record.status == JobStatus.SUCCEEDED
    job = handle.refresh().job
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, "a1")
    assert Execution.objects.filter(token__in=["a1"]).exists()
    assert list(Attempt.objects.filter(job=job).values_list("outcome", flat=True)) == [
        AttemptOutcome.SUCCEEDED
    ]


def test_atomic_failure_rolls_the_writes_back_and_fails_as_usual():
    handle = jobs.atomic_insert.enqueue("a2", fail=True)

    job, outcome, broker = claim_and_run(handle)
    broker.record([settle(job, outcome)])

    assert not outcome.committed
    assert not Execution.objects.filter(token__in=["a2"]).exists()
    assert handle.refresh().status == JobStatus.FAILED
    assert DeadLetter.objects.filter(job_id=handle.id).exists()


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has one writer: while an atomic job's transaction is open, "
    "no other connection can reclaim the job, so the fence cannot be lost",
)
def test_atomic_success_refused_by_the_fence_rolls_the_writes_back(caplog):
    handle = jobs.atomic_insert.enqueue("a3", lose_fence=True)

    _, outcome, _ = claim_and_run(handle)

    assert outcome.committed
    assert outcome.record is None
    assert not Execution.objects.filter(token__in=["a3"]).exists()
    job = handle.refresh().job
    assert (job.status, job.attempt) == (JobStatus.RUNNING, 2)
    assert not Attempt.objects.filter(job=job).exists()
    assert "late outcome refused" in caplog.text


def test_atomic_must_be_a_bool():
    with pytest.raises(InvalidJob, match=r"atomic must be True or False, got 'yes'"):
        background(atomic="yes")(lambda: None)


def test_worker_process_runs_an_atomic_job_and_sends_its_success_signal():
    received = []

    def on_success(sender, job_id, **kwargs):
        received.append((sender, job_id, kwargs["result"]))

    signals.job_succeeded.connect(on_success)
    try:
        handle = jobs.atomic_insert.enqueue("a4")
        process = WorkerProcess(ProcessOptions(burst=True, concurrency=2, grace=5))
        assert process.run() == 0
    finally:
        signals.job_succeeded.disconnect(on_success)

    assert handle.refresh().status == JobStatus.SUCCEEDED
    assert Execution.objects.filter(token__in=["a4"]).count() == 1
    assert received == [(jobs.atomic_insert.name, handle.id, "a4")]
    assert not process.running
