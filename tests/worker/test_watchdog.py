"""The watchdog's decisions: which jobs are overdue, what a timed-out run
records, when a process stops claiming; and one in-process worker whose job
runs past its timeout."""

import datetime as dt
import threading

import pytest

from django_bgjobs import background
from django_bgjobs.broker import ClaimedJob, get_broker
from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from django_bgjobs.worker.executor import timed_out
from django_bgjobs.worker.process import ProcessOptions, WorkerProcess
from django_bgjobs.worker.watchdog import (
    EXIT_RECYCLE,
    EXIT_TIMED_OUT,
    Watchdog,
    nearest,
    overdue,
    rss_mb,
)
from tests import jobs

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

started = threading.Event()
release = threading.Event()


@background(timeout=0.5, attempts=1)
def stalls():
    """Wait until the test sets ``release``; only this module registers it."""
    started.set()
    release.wait(10)
    return "late"


@background
def waits_for_release():
    release.wait(10)
    return "released"


def claimed(job_id=1, timeout=None, started_at=NOW, attempt=1, uncharged=0):
    return ClaimedJob(
        id=job_id,
        task="tests.jobs.hangs_first_run",
        queue="default",
        priority=0,
        args=["t"],
        kwargs={},
        attempt=attempt,
        uncharged=uncharged,
        max_attempts=2,
        timeout=timeout,
        result_ttl=None,
        worker="host:1:abc",
        started_at=started_at,
    )


def seconds(value):
    return dt.timedelta(seconds=value)


def test_overdue_returns_only_jobs_past_their_deadline():
    no_timeout = claimed(1)
    due_now = claimed(2, timeout=1.0, started_at=NOW - seconds(1))
    not_yet = claimed(3, timeout=5.0, started_at=NOW - seconds(4.9))
    long_past = claimed(4, timeout=0.5, started_at=NOW - seconds(60))

    late = overdue([no_timeout, due_now, not_yet, long_past], NOW)

    assert [job.id for job in late] == [2, 4]
    assert overdue([no_timeout, not_yet], NOW) == []


def test_nearest_deadline_ignores_jobs_without_timeout():
    jobs_ = [claimed(1), claimed(2, timeout=9), claimed(3, timeout=4)]
    assert nearest(jobs_) == NOW + seconds(4)
    assert nearest([claimed(1)]) is None


def test_timed_out_run_is_retried_while_attempts_remain():
    record = timed_out(claimed(timeout=1.0), NOW)

    assert record.outcome == AttemptOutcome.TIMED_OUT
    assert record.status == JobStatus.SCHEDULED
    assert record.run_at > NOW  # the task's fixed 0.01 s backoff
    assert record.uncharge == 0
    assert record.error == "JobTimeout: the job ran past its timeout of 1 s"
    assert record.reason == ""


def test_timed_out_last_attempt_is_dead_lettered():
    record = timed_out(claimed(timeout=2.5, attempt=3, uncharged=1), NOW)

    assert (record.status, record.run_at) == (JobStatus.FAILED, None)
    assert record.reason == (
        "timed out; attempts exhausted (2): "
        "JobTimeout: the job ran past its timeout of 2.5 s"
    )


@pytest.mark.django_db
def test_claim_limit_counts_down_the_job_budget():
    watchdog = Watchdog(WorkerProcess(ProcessOptions()), max_jobs=5)

    assert watchdog.claim_limit(8) == 5
    watchdog.claimed(3)
    assert watchdog.claim_limit(8) == 2
    assert watchdog.recycle_reason() == ""
    watchdog.claimed(2)
    assert watchdog.claim_limit(8) == 0
    assert watchdog.recycle_reason() == "ran 5 jobs (--max-jobs-per-process)"


@pytest.mark.django_db
def test_memory_limit_applies_once_a_job_has_run():
    watchdog = Watchdog(WorkerProcess(ProcessOptions()), max_memory_mb=1)

    assert rss_mb() > 1
    assert watchdog.recycle_reason() == ""
    watchdog.claimed(1)
    assert watchdog.recycle_reason().startswith("resident memory ")
    assert watchdog.recycle_reason().endswith("> 1 MiB (--max-memory-per-process)")


@pytest.mark.django_db
def test_draining_process_claims_nothing_and_exits_to_be_recycled():
    process = WorkerProcess(ProcessOptions(max_jobs=1))
    watchdog = process.watchdog
    watchdog.claimed(1)

    watchdog.tick()

    assert watchdog.draining
    assert watchdog.claim_limit(8) == 0
    assert process.stopping.is_set()
    assert process.exit_code == EXIT_RECYCLE


@pytest.fixture
def stalled():
    started.clear()
    release.clear()
    yield
    release.set()


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("number", "outcome", "error_class")
    )


@pytest.mark.django_db(transaction=True)
def test_process_with_an_overdue_job_releases_the_others_and_exits(stalled):
    beside = waits_for_release.enqueue()
    overdue_job = stalls.enqueue()
    process = WorkerProcess(ProcessOptions(concurrency=2))
    result = []
    thread = threading.Thread(target=lambda: result.append(process.run()))
    thread.start()

    thread.join(15)

    assert not thread.is_alive()
    assert result == [EXIT_TIMED_OUT]
    job = Job.objects.get(id=overdue_job.id)
    assert job.status == JobStatus.FAILED
    ((number, outcome, error_class),) = attempts_of(job.id)
    assert (number, outcome, error_class) == (1, AttemptOutcome.TIMED_OUT, "JobTimeout")
    attempt = Attempt.objects.get(job=job)
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 0.5 + 1
    assert DeadLetter.objects.get(job=job).reason.startswith("timed out; ")
    other = Job.objects.get(id=beside.id)
    assert (other.status, other.attempt, other.uncharged) == (JobStatus.READY, 1, 1)
    assert attempts_of(other.id) == [(1, AttemptOutcome.INTERRUPTED, "WorkerShutdown")]


@pytest.mark.django_db(transaction=True)
def test_a_job_within_its_timeout_is_not_touched():
    handle = jobs.hangs_first_run.enqueue("in-time", 0.2)

    process = WorkerProcess(ProcessOptions(burst=True))

    assert process.run() == 0
    job = Job.objects.get(id=handle.id)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, "in-time")
    assert attempts_of(job.id) == [(1, AttemptOutcome.SUCCEEDED, "")]
    assert get_broker().has_running(None) is False
