"""Hard timeouts and process recycling, in real ``runworkers`` processes.

A job past its ``timeout`` takes its worker process down: the attempt is
recorded as timed out, the process's other jobs go back to ready uncharged,
and the supervisor starts a fresh process at once. ``--max-jobs-per-process``
and ``--max-memory-per-process`` recycle a process between jobs.
"""

import collections
import json
import re
import signal

import pytest

from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import jobs
from tests.worker.test_supervisor import START_TIMEOUT, children, statuses

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("number", "outcome", "error_class")
    )


def pid_of(worker):
    return int(worker.split(":")[-2])


def test_overdue_job_is_killed_and_its_process_replaced(start_worker_with, wait_until):
    hung = jobs.hangs_first_run.enqueue("hung", 30)
    beside = [jobs.record_run.enqueue(f"beside-{i}", 3) for i in range(2)]
    process = start_worker_with(
        "--processes", "1", "--concurrency", "3", BGJOBS_LOG_LEVEL="INFO"
    )
    first = wait_until(
        lambda: Attempt.objects.filter(job_id=hung.id, number=1).first(),
        timeout=START_TIMEOUT + 5,
        message="the first attempt of the hung job to be recorded",
    )

    assert first.outcome == AttemptOutcome.TIMED_OUT, process.log_path.read_text()
    assert first.error_message == "the job ran past its timeout of 1 s"
    ran_for = (first.finished_at - first.started_at).total_seconds()
    assert 1 <= ran_for < 1 + 2
    victim = pid_of(first.worker)
    wait_until(
        lambda: statuses([hung, *beside]) == [JobStatus.SUCCEEDED] * 3,
        timeout=20,
        message="the retried job and the released jobs to succeed",
    )
    assert process.poll() is None, process.log_path.read_text()
    assert attempts_of(hung.id) == [
        (1, AttemptOutcome.TIMED_OUT, "JobTimeout"),
        (2, AttemptOutcome.SUCCEEDED, ""),
    ]
    for handle in beside:
        job = Job.objects.get(id=handle.id)
        assert (job.attempt, job.uncharged) == (2, 1)
        assert attempts_of(job.id) == [
            (1, AttemptOutcome.INTERRUPTED, "WorkerShutdown"),
            (2, AttemptOutcome.SUCCEEDED, ""),
        ]
        assert pid_of(Attempt.objects.get(job=job, number=1).worker) == victim
    retry = Attempt.objects.get(job_id=hung.id, number=2)
    replacement = pid_of(retry.worker)
    assert replacement != victim
    assert children(process.pid) == {replacement}
    restarted = (retry.started_at - first.finished_at).total_seconds()
    print(f"killed {ran_for - 1:.2f} s after the timeout; retried {restarted:.2f} s")

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    log = process.log_path.read_text()
    assert len(re.findall(rf"^job timed out id={hung.id} ", log, re.M)) == 1, log
    assert f"worker process {victim} exited (a job timed out)" in log


def test_last_attempt_timed_out_is_dead_lettered(run_worker):
    handle = jobs.hangs_first_run.using(attempts=1).enqueue("once", 30)

    result = run_worker("--processes", "1")

    assert result.returncode == 0, result.stderr
    job = Job.objects.get(id=handle.id)
    assert (job.status, job.attempt) == (JobStatus.FAILED, 1)
    assert attempts_of(job.id) == [(1, AttemptOutcome.TIMED_OUT, "JobTimeout")]
    letter = DeadLetter.objects.get(job=job)
    assert letter.reason.startswith("timed out; attempts exhausted (1)")


def test_job_within_its_timeout_is_unaffected(run_worker):
    handle = jobs.hangs_first_run.using(timeout=5).enqueue("in-time", 1.5)

    result = run_worker("--processes", "1")

    assert result.returncode == 0, result.stderr
    job = Job.objects.get(id=handle.id)
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, "in-time")
    assert attempts_of(job.id) == [(1, AttemptOutcome.SUCCEEDED, "")]
    assert "timed out" not in result.stderr


def test_max_jobs_per_process_recycles_processes(run_worker_with):
    handles = jobs.record_run.enqueue_many([((f"recycle-{i}",), {}) for i in range(20)])

    result = run_worker_with(
        "--processes",
        "1",
        "--concurrency",
        "2",
        "--max-jobs-per-process",
        "5",
        BGJOBS_LOG_LEVEL="INFO",
    )

    assert result.returncode == 0, result.stderr
    assert statuses(handles) == [JobStatus.SUCCEEDED] * 20
    attempts = Attempt.objects.filter(job_id__in=[h.id for h in handles])
    assert (
        sorted(attempts.values_list("number", "outcome"))
        == [(1, AttemptOutcome.SUCCEEDED)] * 20
    )
    per_worker = collections.Counter(attempts.values_list("worker", flat=True))
    assert sorted(per_worker.values()) == [5, 5, 5, 5], per_worker
    assert len({pid_of(worker) for worker in per_worker}) == 4
    recycled = re.findall(r"^worker recycling id=\S+: ran 5 jobs", result.stderr, re.M)
    # The fourth may instead exit as burst mode ends: no job is left.
    assert len(recycled) in (3, 4), result.stderr


def test_max_memory_per_process_recycles_a_process(run_worker_with):
    hoard = jobs.hoards_memory.enqueue(200)
    later = jobs.record_run.using(priority=-1).enqueue("after-hoard")

    result = run_worker_with(
        "--processes",
        "1",
        "--concurrency",
        "1",
        "--max-memory-per-process",
        "150",
        BGJOBS_LOG_LEVEL="INFO",
    )

    assert result.returncode == 0, result.stderr
    assert statuses([hoard, later]) == [JobStatus.SUCCEEDED] * 2
    assert attempts_of(hoard.id) == [(1, AttemptOutcome.SUCCEEDED, "")]
    assert re.search(
        r"^worker recycling id=\S+: resident memory \d+ MiB > 150 MiB ",
        result.stderr,
        re.M,
    ), result.stderr
    assert re.search(r"worker process \d+ exited \(recycled\)", result.stderr)
    (hoarder,) = Attempt.objects.filter(job_id=hoard.id).values_list(
        "worker", flat=True
    )
    (fresh,) = Attempt.objects.filter(job_id=later.id).values_list("worker", flat=True)
    assert pid_of(fresh) != pid_of(hoarder)


def test_frozen_process_is_killed_by_the_supervisor(start_worker_with, wait_until):
    handle = jobs.freezes_first_run.enqueue("frozen")
    overrides = {"LEASE_SECONDS": 2, "HEARTBEAT_SECONDS": 0.5}
    process = start_worker_with(
        "--processes", "1", "--concurrency", "1", BGJOBS_OVERRIDES=json.dumps(overrides)
    )
    wait_until(
        lambda: statuses([handle]) == [JobStatus.SUCCEEDED],
        timeout=START_TIMEOUT + 30,
        message="the frozen job to be reaped and retried",
    )

    assert process.poll() is None, process.log_path.read_text()
    # The supervisor killed the process for the overdue job: timed out.
    assert attempts_of(handle.id) == [
        (1, AttemptOutcome.TIMED_OUT, "JobTimeout"),
        (2, AttemptOutcome.SUCCEEDED, ""),
    ]
    first, second = Attempt.objects.filter(job_id=handle.id).order_by("number")
    log = process.log_path.read_text()
    frozen = pid_of(first.worker)
    assert re.search(
        rf"^worker process {frozen} is \d+\.\d s past a job's timeout and does not "
        "respond; killing it$",
        log,
        re.M,
    ), log
    assert pid_of(second.worker) != frozen
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
