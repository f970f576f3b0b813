"""The supervisor under signals and crashes, in real ``runworkers`` processes.

A stop signal lets running jobs finish within ``--grace`` and hands the rest
back uncharged; a killed worker process is replaced, and its jobs are reaped
once their lease runs out.
"""

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from django_bgjobs.models import Attempt, Job, Worker
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import jobs
from tests.models import Execution

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A worker subprocess needs a second or two to import Django on a busy box.
START_TIMEOUT = 30


def children(pid):
    """Return the pids of the supervisor's worker processes."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


def first_run_started(token):
    """Return a predicate: has ``slow_first_run(token)`` begun a first run?"""
    return lambda: Execution.objects.filter(token=token).exists()


def statuses(handles):
    rows = Job.objects.filter(id__in=[h.id for h in handles])
    return sorted(rows.values_list("status", flat=True))


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("number", "outcome", "error_class")
    )


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigterm-supervisor", "sigint-process-group"],
)
def test_stop_signal_lets_running_jobs_finish(
    start_worker_with, wait_until, signum, to_group
):
    sleepers = [jobs.sleeper.enqueue(1.5) for _ in range(2)]
    process = start_worker_with(
        "--processes", "1", "--concurrency", "2", "--grace", "5"
    )
    wait_until(
        lambda: statuses(sleepers) == [JobStatus.RUNNING] * 2,
        timeout=START_TIMEOUT,
        message="both sleepers running",
    )
    late = jobs.noop.enqueue()

    # SIGINT to the group is what Ctrl-C in a terminal sends.
    (os.killpg if to_group else os.kill)(process.pid, signum)
    assert process.wait(timeout=5 + 5) == 0, process.log_path.read_text()

    assert statuses(sleepers) == [JobStatus.SUCCEEDED] * 2
    for handle in sleepers:
        assert attempts_of(handle.id) == [(1, AttemptOutcome.SUCCEEDED, "")]
    late_job = Job.objects.get(id=late.id)
    assert (late_job.status, late_job.attempt) == (JobStatus.READY, 0)


def test_job_running_past_the_grace_goes_back_to_ready_uncharged(
    start_worker_with, run_worker, wait_until
):
    handle = jobs.slow_first_run.enqueue("past-grace", 30)
    process = start_worker_with(
        "--processes", "1", "--concurrency", "1", "--grace", "0.5"
    )
    wait_until(
        first_run_started("past-grace"), timeout=START_TIMEOUT, message="a first run"
    )

    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, process.log_path.read_text()
    assert time.monotonic() - sent < 10

    job = Job.objects.get(id=handle.id)
    assert (job.status, job.attempt, job.uncharged) == (JobStatus.READY, 1, 1)
    assert job.charged_attempts == 0
    assert attempts_of(job.id) == [(1, AttemptOutcome.INTERRUPTED, "WorkerShutdown")]

    result = run_worker("--processes", "1")
    assert result.returncode == 0, result.stderr
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, "past-grace")
    assert [row[:2] for row in attempts_of(job.id)] == [
        (1, AttemptOutcome.INTERRUPTED),
        (2, AttemptOutcome.SUCCEEDED),
    ]


def test_killed_worker_is_replaced_and_its_job_recovered_at_once(
    start_worker_with, wait_until
):
    # The default 30 s lease: the supervisor, not the reaper, recovers the job.
    handle = jobs.slow_first_run.enqueue("crash", 30)
    process = start_worker_with(
        "--processes", "2", "--concurrency", "1", BGJOBS_LOG_LEVEL="INFO"
    )
    wait_until(first_run_started("crash"), timeout=START_TIMEOUT, message="a first run")
    before = children(process.pid)
    victim = int(Job.objects.get(id=handle.id).worker.split(":")[-2])
    assert len(before) == 2
    assert victim in before

    def replaced():
        kids = children(process.pid)
        return kids if victim not in kids and len(kids) == 2 else None

    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    after = wait_until(replaced, timeout=10, message="a replacement worker process")
    (replacement,) = after - before
    wait_until(
        lambda: statuses([handle]) == [JobStatus.SUCCEEDED],
        timeout=10,
        message="the killed process's job to be recovered and run again",
    )
    assert time.monotonic() - killed < 10, "recovered well before the 30 s lease"

    more = [jobs.record_run.enqueue(f"after-crash-{i}", 0.3) for i in range(6)]
    wait_until(
        lambda: statuses([*more, handle]) == [JobStatus.SUCCEEDED] * 7,
        timeout=20,
        message="the reaped job and the new jobs to succeed",
    )
    assert process.poll() is None, process.log_path.read_text()
    assert attempts_of(handle.id) == [
        (1, AttemptOutcome.LOST, "WorkerLost"),
        (2, AttemptOutcome.SUCCEEDED, ""),
    ]
    lost = Attempt.objects.get(job_id=handle.id, number=1)
    assert lost.error_message == f"worker process {victim} died (signal 9)"
    log = process.log_path.read_text()
    assert f"recorded 1 running jobs of dead worker process {victim}" in log, log
    assert Worker.objects.get(id=lost.worker).lost_at is not None
    pids = {
        int(worker.split(":")[-2])
        for worker in Attempt.objects.filter(
            job_id__in=[h.id for h in more]
        ).values_list("worker", flat=True)
    }
    assert replacement in pids, "the replacement process runs jobs"
    assert victim not in pids

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, process.log_path.read_text()


def exited(pid):
    """Return True once ``pid`` is gone or a zombie nobody reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_workers_stop_when_the_supervisor_is_killed(start_worker_with, wait_until):
    process = start_worker_with("--processes", "2")
    kids = wait_until(
        lambda: len(found := children(process.pid)) == 2 and found,
        timeout=START_TIMEOUT,
        message="two worker processes",
    )

    process.kill()
    process.wait(timeout=10)

    try:
        wait_until(
            lambda: all(exited(pid) for pid in kids),
            # Liveness, not speed: a stopping child may wait on its listener
            # (5 s) and heartbeat (10 s) threads before it exits, and under
            # a full parallel suite on 2 cores it once took over 30 s.
            timeout=60,
            message="the orphaned worker processes to exit",
        )
    except AssertionError:
        # Say where each child is stuck, for the next look at this: SIGUSR1
        # makes a worker process print its threads' Python stacks to the log.
        for pid in kids:
            if not exited(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGUSR1)
        time.sleep(1)
        print(process.log_path.read_text()[-20000:])
        for pid in kids:
            if not exited(pid):
                for name in ("wchan", "stack"):
                    with contextlib.suppress(OSError):
                        print(pid, name, Path(f"/proc/{pid}/{name}").read_text())
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError):
                        print(
                            pid,
                            task.name,
                            (task / "comm").read_text().strip(),
                            (task / "wchan").read_text(),
                        )
        raise


def test_sigusr1_prints_a_worker_process_stacks_and_it_runs_on(
    start_worker_with, wait_until
):
    process = start_worker_with("--processes", "1")
    (kid,) = wait_until(
        lambda: len(found := children(process.pid)) == 1 and found,
        timeout=START_TIMEOUT,
        message="one worker process",
    )
    # Registered: past the moment it set its SIGUSR1 handler.
    wait_until(
        lambda: Worker.objects.filter(pid=kid).exists(),
        timeout=START_TIMEOUT,
        message="the worker process's registration",
    )

    os.kill(kid, signal.SIGUSR1)

    wait_until(
        lambda: "in _watch_parent" in process.log_path.read_text(),
        timeout=10,
        message="the thread stacks in the log",
    )
    assert not exited(kid)
    assert process.poll() is None
