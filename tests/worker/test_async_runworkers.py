"""Coroutine jobs under ``runworkers``, in real subprocesses.

Acceptance 3 of issue 6: 200 ``async def`` jobs that each await
``asyncio.sleep(0.5)`` finish in under 3 s with one process, because they
overlap on its event loop. The stop signal and an operator's cancel reach
coroutine jobs as they reach plain ones.
"""

import json
import signal

import pytest
from django.db.models import Max, Min

from django_bgjobs.models import Attempt, Job
from django_bgjobs.services.operations import cancel_jobs
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import jobs
from tests.worker.test_supervisor import START_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("outcome", "error_class")
    )


def test_200_coroutine_jobs_of_half_a_second_overlap_in_one_process(run_worker):
    handles = jobs.async_sleep.enqueue_many([((0.5, i), {}) for i in range(200)])

    result = run_worker("--processes", "1", "--concurrency", "1")

    assert result.returncode == 0, result.stderr
    rows = Job.objects.filter(id__in=[h.id for h in handles])
    assert sorted(rows.values_list("result", flat=True)) == list(range(200))
    # From the first claim to the last outcome: start-up is not the jobs'.
    span = rows.aggregate(first=Min("started_at"), last=Max("finished_at"))
    took = (span["last"] - span["first"]).total_seconds()
    # 200 x 0.5 s one after another is 100 s; 100 at a time (the default
    # --async-concurrency) at least 1 s. Measured 1.06-1.45 s, median 1.12.
    assert took < 3, f"200 coroutine jobs took {took:.2f} s"


def test_stop_signal_lets_coroutine_jobs_finish_and_releases_the_rest(
    start_worker_with, wait_until
):
    quick = jobs.async_sleep.enqueue(1.0, "done")
    slow = jobs.async_sleep.enqueue(60, "never")
    process = start_worker_with("--processes", "1", "--grace", "2")
    wait_until(
        lambda: Job.objects.filter(status=JobStatus.RUNNING).count() == 2,
        timeout=START_TIMEOUT,
        message="both coroutine jobs running",
    )

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0, process.log_path.read_text()

    assert Job.objects.get(id=quick.id).result == "done"
    job = Job.objects.get(id=slow.id)
    assert (job.status, job.attempt, job.uncharged) == (JobStatus.READY, 1, 1)
    assert attempts_of(job.id) == [(AttemptOutcome.INTERRUPTED, "WorkerShutdown")]


def test_an_operators_cancel_stops_a_coroutine_job_in_runworkers(
    start_worker_with, wait_until
):
    handle = jobs.async_waits_for_cancel.enqueue(60)
    process = start_worker_with(
        "--processes",
        "1",
        BGJOBS_OVERRIDES=json.dumps({"HEARTBEAT_SECONDS": 0.2, "LEASE_SECONDS": 5}),
    )
    wait_until(
        lambda: handle.refresh().status == JobStatus.RUNNING,
        timeout=START_TIMEOUT,
        message="the job to start",
    )

    assert cancel_jobs([handle.id]).requested == 1

    wait_until(lambda: handle.refresh().is_finished, timeout=10)
    assert handle.status == JobStatus.CANCELLED, process.log_path.read_text()
    assert attempts_of(handle.id) == [(AttemptOutcome.CANCELLED, "JobCancelled")]


def test_async_concurrency_flag_must_be_positive(run_worker):
    result = run_worker("--async-concurrency", "0")

    assert result.returncode != 0
    assert "--async-concurrency must be at least 1." in result.stderr
