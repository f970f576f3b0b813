"""Coroutine jobs on a worker process's event loop, in the test's process.

The real claim loop, event loop thread, recorder and heartbeat against the
test database, as in ``test_process``: retries, soft timeouts, an operator's
cancel and the graceful stop hold for ``async def`` jobs as for plain ones.
"""

import threading
import time

import pytest
from django.db.models import Max, Min

from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.services.operations import cancel_jobs
from django_bgjobs.status import AttemptOutcome, JobStatus
from django_bgjobs.worker.process import ProcessOptions, WorkerProcess
from django_bgjobs.worker.watchdog import EXIT_TIMED_OUT
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("outcome", "error_class")
    )


def run_burst(**options):
    return WorkerProcess(ProcessOptions(burst=True, **options)).run()


class Running:
    """A ``WorkerProcess`` on a thread of the test; stopped at the end."""

    def __init__(self, **options):
        self.process = WorkerProcess(ProcessOptions(**options))
        self.thread = threading.Thread(target=self.process.run)
        self.thread.start()

    def stop(self):
        self.process.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()
        return self.process.exit_code


@pytest.fixture
def running():
    started = []

    def start(**options):
        started.append(Running(**options))
        return started[-1]

    yield start
    for worker in started:
        if worker.thread.is_alive():
            worker.stop()


def test_coroutine_jobs_overlap_on_the_event_loop_not_the_threads():
    handles = jobs.async_sleep.enqueue_many([((0.3, i), {}) for i in range(40)])

    assert run_burst(concurrency=1, async_concurrency=100) == 0

    rows = Job.objects.filter(id__in=[h.id for h in handles])
    assert sorted(rows.values_list("result", flat=True)) == list(range(40))
    span = rows.aggregate(first=Min("started_at"), last=Max("finished_at"))
    took = (span["last"] - span["first"]).total_seconds()
    # 40 x 0.3 s one at a time would be 12 s; one thread runs them all at once.
    assert took < 4, took


def test_async_concurrency_bounds_the_coroutine_jobs_run_at_once():
    jobs.async_sleep.enqueue_many([((0.3, i), {}) for i in range(6)])
    began = time.monotonic()

    assert run_burst(concurrency=1, async_concurrency=2) == 0

    # Three rounds of two: at least 0.9 s.
    assert time.monotonic() - began >= 0.9
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 6


def test_a_failing_coroutine_job_is_retried_with_its_backoff():
    handle = jobs.async_fails_then_succeeds.enqueue("retry", 2)

    assert run_burst() == 0

    job = Job.objects.get(id=handle.id)
    assert (job.status, job.result, job.attempt) == (JobStatus.SUCCEEDED, 2, 3)
    assert attempts_of(job.id) == [
        (AttemptOutcome.FAILED, "RuntimeError"),
        (AttemptOutcome.FAILED, "RuntimeError"),
        (AttemptOutcome.SUCCEEDED, ""),
    ]


def test_a_coroutine_job_past_its_timeout_is_cancelled_and_the_process_lives():
    overrun = jobs.async_overruns.enqueue(30)
    beside = jobs.async_sleep.enqueue(1.0, "beside")

    # A plain job's timeout stops the process (EXIT_TIMED_OUT); this one
    # is cancelled on the loop and the process carries on.
    assert run_burst() == 0

    job = Job.objects.get(id=overrun.id)
    assert job.status == JobStatus.FAILED
    assert attempts_of(job.id) == [(AttemptOutcome.TIMED_OUT, "JobTimeout")] * 2
    assert job.error == "JobTimeout: the job ran past its timeout of 0.5 s"
    assert DeadLetter.objects.get(job=job).reason.startswith("timed out; attempts")
    assert Job.objects.get(id=beside.id).result == "beside"
    assert attempts_of(beside.id) == [(AttemptOutcome.SUCCEEDED, "")]


def test_an_operators_cancel_cancels_the_coroutine_jobs_task(
    settings, running, wait_until
):
    settings.BGJOBS = {"HEARTBEAT_SECONDS": 0.1, "LEASE_SECONDS": 5}
    handle = jobs.async_waits_for_cancel.enqueue(30)
    beside = jobs.async_waits_for_cancel.enqueue(1)
    worker = running(concurrency=1, grace=0.1)
    wait_until(lambda: handle.refresh().status == JobStatus.RUNNING)

    assert cancel_jobs([handle.id]).requested == 1
    wait_until(lambda: handle.refresh().is_finished, timeout=5)

    assert handle.status == JobStatus.CANCELLED
    assert attempts_of(handle.id) == [(AttemptOutcome.CANCELLED, "JobCancelled")]
    assert not DeadLetter.objects.exists()
    wait_until(lambda: beside.refresh().is_finished, timeout=5)
    assert beside.result == "not cancelled"
    assert worker.stop() == 0


def test_stop_lets_coroutine_jobs_finish_within_the_grace(running, wait_until):
    quick = jobs.async_sleep.enqueue(0.5, "done")
    slow = jobs.async_sleep.enqueue(30, "never")
    worker = running(grace=1.5)
    wait_until(
        lambda: Job.objects.filter(status=JobStatus.RUNNING).count() == 2,
        message="both jobs to start",
    )

    assert worker.stop() == 0

    assert Job.objects.get(id=quick.id).result == "done"
    job = Job.objects.get(id=slow.id)
    assert (job.status, job.attempt, job.uncharged) == (JobStatus.READY, 1, 1)
    assert attempts_of(job.id) == [(AttemptOutcome.INTERRUPTED, "WorkerShutdown")]


def test_the_heartbeat_renews_the_leases_of_coroutine_jobs(
    settings, running, wait_until
):
    settings.BGJOBS = {"HEARTBEAT_SECONDS": 0.1, "LEASE_SECONDS": 5}
    handle = jobs.async_sleep.enqueue(30)
    worker = running(grace=0.1)
    wait_until(lambda: handle.refresh().status == JobStatus.RUNNING)
    first = handle.job.lease_expires_at

    wait_until(lambda: handle.refresh().job.lease_expires_at > first, timeout=5)
    worker.stop()


def test_plain_and_coroutine_jobs_run_side_by_side():
    plain = jobs.sleeper.enqueue_many([((0.2,), {}) for _ in range(4)])
    coroutines = jobs.async_sleep.enqueue_many([((0.2, i), {}) for i in range(20)])

    assert run_burst(concurrency=2) == 0

    ids = [h.id for h in plain + coroutines]
    statuses = Job.objects.filter(id__in=ids).values_list("status", flat=True)
    assert set(statuses) == {JobStatus.SUCCEEDED}


def test_a_coroutine_job_that_blocks_the_loop_meets_the_hard_timeout():
    handle = jobs.async_blocks_loop.enqueue(3)

    # Past its timeout plus ASYNC_TIMEOUT_MARGIN the watchdog stops the
    # process, as for a plain job (the supervisor then starts a fresh one).
    assert run_burst() == EXIT_TIMED_OUT

    job = Job.objects.get(id=handle.id)
    assert job.status == JobStatus.FAILED
    assert attempts_of(job.id) == [(AttemptOutcome.TIMED_OUT, "JobTimeout")]
