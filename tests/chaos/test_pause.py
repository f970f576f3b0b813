"""Acceptance 3 of issue 3: a worker process paused (SIGSTOP) past its lease
loses the job to another process, and once resumed cannot overwrite that
process's outcome: the late completion is refused and logged."""

import pytest

from django_bgjobs.models import Attempt, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import chaos_jobs
from tests.models import ChaosRun

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True),
]

KEY = 3


def pid_of(worker):
    """Return the pid in a worker id ``host:pid:suffix``."""
    return int(worker.split(":")[-2])


def test_paused_worker_cannot_overwrite_the_outcome_of_the_run_that_replaced_it(
    chaos_workers, wait_until
):
    # The first run sleeps 3 s, longer than the 2 s lease; the rerun returns.
    handle = chaos_jobs.paused_run.enqueue(KEY, 3)
    workers = chaos_workers("--processes", "2", "--concurrency", "1")
    children = workers.wait_for_children(2)
    wait_until(
        lambda: ChaosRun.objects.filter(key=KEY).exists(),
        timeout=30,
        message="the first run to start",
    )
    paused = pid_of(Job.objects.get(id=handle.id).worker)
    (other,) = set(children) - {paused}

    with workers.paused(paused):
        job = wait_until(
            lambda: Job.objects.filter(
                id=handle.id, status=JobStatus.SUCCEEDED
            ).first(),
            timeout=20,
            message="another process to reclaim and complete the job",
        )
        assert (job.result, job.attempt) == (other, 2)

    refused = f"late outcome refused job_id={handle.id} attempt=1 outcome=succeeded"
    wait_until(
        lambda: refused in workers.log(),
        timeout=10,
        message="the paused run's late success to be refused",
    )
    job = Job.objects.get(id=handle.id)
    assert (job.status, job.result, job.attempt) == (JobStatus.SUCCEEDED, other, 2)
    attempts = Attempt.objects.filter(job_id=handle.id).order_by("number")
    assert [(a.number, a.outcome, pid_of(a.worker)) for a in attempts] == [
        (1, AttemptOutcome.LOST, paused),
        (2, AttemptOutcome.SUCCEEDED, other),
    ]
    assert sorted(workers.children()) == sorted(children), "no process died"
    assert workers.stop() == 0, workers.log()
