"""Cooperative cancellation of running jobs, in real ``runworkers`` processes.

An operator's cancel of a running job sets ``cancel_requested_at``; the
worker's heartbeat flags it to the job code (``current_job()``), and the run
ends ``cancelled`` unless it succeeds. A job that ignores the flag ends
``cancelled`` at its timeout.
"""

import json
import re
import time

import pytest

from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.services.operations import cancel_jobs
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import jobs
from tests.worker.test_supervisor import START_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAST_BEATS = json.dumps({"HEARTBEAT_SECONDS": 0.2, "LEASE_SECONDS": 5})


def outcomes(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("outcome", "error_class")
    )


def started(handle, wait_until):
    wait_until(
        lambda: Job.objects.filter(id=handle.id, status=JobStatus.RUNNING).exists(),
        timeout=START_TIMEOUT,
        message=f"job {handle.id} to start",
    )


def ended(handle, wait_until, timeout=10):
    return wait_until(
        lambda: handle.refresh().is_finished and handle,
        timeout=timeout,
        message=f"job {handle.id} to finish",
    )


def test_a_job_that_checks_stops_within_a_heartbeat(start_worker_with, wait_until):
    cooperative = jobs.waits_for_cancel.enqueue(30)
    beside = jobs.waits_for_cancel.enqueue(1)
    process = start_worker_with(
        "--concurrency", "2", BGJOBS_OVERRIDES=FAST_BEATS, BGJOBS_LOG_LEVEL="INFO"
    )
    started(cooperative, wait_until)

    asked = time.monotonic()
    result = cancel_jobs([cooperative.id])
    assert (result.changed, result.requested) == (0, 1)
    ended(cooperative, wait_until)
    took = time.monotonic() - asked

    assert cooperative.status == JobStatus.CANCELLED, process.log_path.read_text()
    assert took < 5, f"the cancel took {took:.1f} s with 0.2 s heartbeats"
    assert outcomes(cooperative.id) == [(AttemptOutcome.CANCELLED, "JobCancelled")]
    assert cooperative.error.startswith("JobCancelled: job ")
    assert not DeadLetter.objects.exists()
    # The other job of the process was not touched.
    assert ended(beside, wait_until).status == JobStatus.SUCCEEDED
    assert beside.result == "not cancelled"
    log = process.log_path.read_text()
    assert re.search(rf"job cancel requested id={cooperative.id} ", log), log


def test_a_job_that_fails_after_the_cancel_is_not_retried(
    start_worker_with, wait_until
):
    handle = jobs.fails_once_cancelled.enqueue(30)
    start_worker_with(BGJOBS_OVERRIDES=FAST_BEATS)
    started(handle, wait_until)

    cancel_jobs([handle.id])

    assert ended(handle, wait_until).status == JobStatus.CANCELLED
    assert outcomes(handle.id) == [(AttemptOutcome.CANCELLED, "JobCancelled")]
    assert handle.error == (
        "JobCancelled: cancelled by an operator while running; the run ended "
        "with RuntimeError: stopped halfway"
    )
    assert not DeadLetter.objects.exists()


def test_a_job_that_ignores_the_cancel_ends_cancelled_at_its_timeout(
    start_worker_with, wait_until
):
    handle = jobs.ignores_cancel.enqueue(30)
    process = start_worker_with(BGJOBS_OVERRIDES=FAST_BEATS)
    started(handle, wait_until)

    cancel_jobs([handle.id])

    assert ended(handle, wait_until).status == JobStatus.CANCELLED
    [(outcome, error_class)] = outcomes(handle.id)
    assert (outcome, error_class) == (AttemptOutcome.CANCELLED, "JobCancelled")
    assert "the run ended with JobTimeout" in handle.error
    assert not DeadLetter.objects.exists()
    assert process.poll() is None, process.log_path.read_text()
