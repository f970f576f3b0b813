"""Pausing a queue stops claims on every worker process within a second;
resuming it restarts them. Real ``runworkers`` processes."""

import datetime as dt
import sys

import pytest
from django.db.models import Max, Min
from django.utils import timezone

from django_bgjobs.models import Job
from django_bgjobs.services.queues import pause_queues, resume_queues
from django_bgjobs.status import JobStatus
from tests import jobs
from tests.worker.test_supervisor import START_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

#: The acceptance bound: no claim of a paused queue this long after the
#: pause returned.
BOUND = dt.timedelta(seconds=1)


def count(**filters):
    return Job.objects.filter(**filters).count()


def test_pause_stops_claims_on_every_worker_and_resume_restarts_them(
    start_worker_with, wait_until
):
    handles = jobs.sleeper.using(queue="reports").enqueue_many([((0.05,), {})] * 400)
    other = jobs.sleeper.enqueue_many([((0.05,), {})] * 10)
    start_worker_with("--processes", "2", "--concurrency", "4")
    wait_until(
        lambda: count(queue="reports", status=JobStatus.SUCCEEDED) >= 40,
        timeout=START_TIMEOUT,
        message="both processes busy on the queue",
    )

    asked = timezone.now()
    pause_queues(["reports"])
    paused = timezone.now()
    # Running jobs finish; then watch past the bound for a late claim.
    wait_until(
        lambda: count(queue="reports", status=JobStatus.RUNNING) == 0,
        message="the running jobs of the paused queue to finish",
    )
    wait_until(lambda: timezone.now() > paused + BOUND + BOUND / 2, timeout=5)

    reports = Job.objects.filter(queue="reports")
    last_start = reports.aggregate(last=Max("started_at"))["last"]
    assert last_start <= paused + BOUND
    left = count(queue="reports", status=JobStatus.READY, attempt=0)
    assert left > 100, "the pause came too late to prove anything"
    workers = set(reports.exclude(worker="").values_list("worker", flat=True))
    assert len(workers) == 2, "both worker processes claimed before the pause"
    assert count(id__in=[h.id for h in other], status=JobStatus.SUCCEEDED) == 10

    resumed = timezone.now()
    resume_queues(["reports"])
    wait_until(
        lambda: count(queue="reports", status=JobStatus.SUCCEEDED) == len(handles),
        timeout=60,
        message="the resumed queue to run the rest",
    )
    restarted = (
        reports.filter(started_at__gt=resumed).aggregate(first=Min("started_at"))
    )["first"]
    # Figures for the closing note (pytest -s): last claim after the pause
    # began, first claim after the resume began.
    print(
        f"\npause: last claim {(last_start - asked).total_seconds() * 1000:.1f} ms "
        f"after the pause began ({left} jobs left); resume: first claim "
        f"{(restarted - resumed).total_seconds() * 1000:.1f} ms after",
        file=sys.stderr,
    )


def test_burst_mode_does_not_wait_for_a_paused_queue(run_worker):
    paused_jobs = jobs.noop.using(queue="reports").enqueue_many([((), {})] * 3)
    soon = timezone.now() + dt.timedelta(seconds=2)
    jobs.noop.using(queue="reports", run_at=soon).enqueue()
    running = jobs.noop.using(queue="reports").enqueue()
    Job.objects.filter(id=running.id).update(status=JobStatus.RUNNING, attempt=1)
    others = jobs.noop.enqueue_many([((), {})] * 3)
    pause_queues(["reports"])

    result = run_worker("--processes", "1", timeout=60)

    assert result.returncode == 0, result.stderr
    assert count(id__in=[h.id for h in others], status=JobStatus.SUCCEEDED) == 3
    left = Job.objects.filter(id__in=[h.id for h in paused_jobs])
    assert set(left.values_list("status", "attempt")) == {(JobStatus.READY, 0)}
