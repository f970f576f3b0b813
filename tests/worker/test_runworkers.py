"""``runworkers --burst`` end to end, in real subprocesses.

Each test enqueues jobs, runs the command (it exits once no job is ready or
due within ``BURST_HORIZON``) and reads the rows the run left behind.
"""

import re

import pytest
from django.db import connection
from django.db.models import Count
from django.urls import reverse

from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import jobs
from tests.models import Execution

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAILED = AttemptOutcome.FAILED


def burst(run_worker, *flags, **env):
    result = run_worker(*flags, **env)
    assert result.returncode == 0, result.stderr
    return result


def attempts_of(job_id):
    return list(
        Attempt.objects.filter(job_id=job_id)
        .order_by("number")
        .values_list("number", "outcome", "error_class")
    )


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has one writer: too slow for 2000"
)
def test_two_processes_run_2000_jobs_exactly_once(run_worker_with):
    tokens = [f"bulk-{i}" for i in range(2000)]
    handles = jobs.record_run.enqueue_many([((token,), {}) for token in tokens])

    # Each run writes a row: a connection kept open saves one per job.
    burst(run_worker_with, "--processes", "2", "--concurrency", "8", CONN_MAX_AGE="60")

    counts = dict(Job.objects.values_list("status").annotate(n=Count("id")))
    assert counts == {JobStatus.SUCCEEDED: 2000}
    results = dict(Job.objects.values_list("id", "result"))
    assert results == {h.id: token for h, token in zip(handles, tokens, strict=True)}
    assert sorted(Execution.objects.values_list("token", flat=True)) == sorted(tokens)
    attempts = Attempt.objects.values_list("job_id", "number", "outcome")
    expected = sorted((h.id, 1, AttemptOutcome.SUCCEEDED) for h in handles)
    assert sorted(attempts) == expected
    workers = set(Attempt.objects.values_list("worker", flat=True))
    assert len(workers) == 2, "both worker processes ran jobs"


def test_exhausted_job_is_dead_lettered_with_growing_backoff(run_worker):
    handle = jobs.always_fails.enqueue(message="boom-1")

    burst(run_worker, "--processes", "1")

    job = Job.objects.get(id=handle.id)
    assert (job.status, job.attempt) == (JobStatus.FAILED, 3)
    assert job.error == "RuntimeError: boom-1"
    assert attempts_of(job.id) == [(n, FAILED, "RuntimeError") for n in (1, 2, 3)]
    first, second, third = Attempt.objects.filter(job=job).order_by("number")
    # backoff_delay 0.05 s doubled per attempt; run_at = failure + backoff.
    assert (second.started_at - first.finished_at).total_seconds() >= 0.05
    assert (third.started_at - second.finished_at).total_seconds() >= 0.1
    letter = DeadLetter.objects.get(job=job)
    assert letter.task == "tests.jobs.always_fails"
    assert (letter.args, letter.kwargs) == (job.args, job.kwargs)
    assert (letter.args, letter.kwargs) == ([], {"message": "boom-1"})
    assert letter.attempts == 3
    assert letter.reason.startswith("attempts exhausted (3)")
    assert letter.error_class == "RuntimeError"
    assert [h["number"] for h in letter.history] == [1, 2, 3]
    assert {h["outcome"] for h in letter.history} == {FAILED}


def test_dead_letters_requeued_in_the_admin_run_again(run_worker, admin_client):
    doomed = jobs.always_fails.enqueue(message="again")
    healed = jobs.fails_then_succeeds.enqueue("heal", 3)
    burst(run_worker, "--processes", "1")
    letters = {d.job_id: d for d in DeadLetter.objects.all()}
    assert set(letters) == {doomed.id, healed.id}

    response = admin_client.post(
        reverse("admin:django_bgjobs_deadletter_changelist"),
        {"action": "requeue", "_selected_action": [d.id for d in letters.values()]},
        follow=True,
    )
    assert response.status_code == 200
    assert Job.objects.filter(status=JobStatus.READY).count() == 2
    burst(run_worker, "--processes", "1")

    for letter in letters.values():
        letter.refresh_from_db()
        assert letter.requeued_at is not None
    doomed_again = letters[doomed.id].requeued_job
    assert doomed_again.status == JobStatus.FAILED
    assert attempts_of(doomed_again.id) == [
        (n, FAILED, "RuntimeError") for n in (1, 2, 3)
    ]
    second_letter = DeadLetter.objects.get(job=doomed_again)
    assert second_letter.kwargs == {"message": "again"}
    assert second_letter.requeued_at is None

    # The first run's three failures used up the budget; the new job succeeds.
    healed_again = letters[healed.id].requeued_job
    assert (healed_again.status, healed_again.result) == (JobStatus.SUCCEEDED, 3)
    assert attempts_of(healed_again.id) == [(1, AttemptOutcome.SUCCEEDED, "")]
    assert DeadLetter.objects.count() == 3


def test_permanent_and_not_retryable_errors_skip_retries(run_worker):
    permanent = jobs.fails_permanently.enqueue()
    key_error = jobs.raises_key_error.enqueue()

    burst(run_worker, "--processes", "1")

    expected = {
        permanent.id: ("django_bgjobs.exceptions.Permanent", "permanent error: "),
        key_error.id: ("KeyError", "not retryable: "),
    }
    for job_id, (error_class, reason) in expected.items():
        assert Job.objects.get(id=job_id).status == JobStatus.FAILED
        assert attempts_of(job_id) == [(1, FAILED, error_class)]
        letter = DeadLetter.objects.get(job_id=job_id)
        assert letter.reason.startswith(reason + error_class), letter.reason
        assert letter.attempts == 1
    assert "card declined" in DeadLetter.objects.get(job_id=permanent.id).reason


def test_each_run_logs_one_line_at_info(run_worker_with):
    added = jobs.add.enqueue(1, 2)
    other_queue = jobs.noop.using(queue="logs").enqueue()
    failing = jobs.always_fails.enqueue()

    result = burst(
        run_worker_with,
        "--processes",
        "1",
        "--concurrency",
        "2",
        BGJOBS_LOG_LEVEL="INFO",
    )

    runs = [
        (added.id, "tests.jobs.add", "default", 1, "succeeded"),
        (other_queue.id, "tests.jobs.noop", "logs", 1, "succeeded"),
        *(
            (failing.id, "tests.jobs.always_fails", "default", n, "failed")
            for n in (1, 2, 3)
        ),
    ]
    for job_id, task, queue, attempt, outcome in runs:
        fields = f"id={job_id} task={task} queue={queue} attempt={attempt}"
        finished = re.findall(
            rf"^job finished {fields} outcome={outcome} status=\w+ "
            r"duration=\d+\.\d{3}s$",
            result.stderr,
            re.M,
        )
        assert len(finished) == 1, result.stderr
    # One line per attempt at INFO: "job started" is DEBUG.
    assert len(re.findall(r"^job finished ", result.stderr, re.M)) == 5
    assert not re.findall(r"^job started ", result.stderr, re.M)


def test_queues_flag_runs_only_the_named_queues(run_worker):
    handles = {
        queue: jobs.noop.using(queue=queue).enqueue_many([((), {})] * 3)
        for queue in ("a", "b", "c")
    }

    burst(run_worker, "--processes", "1", "--queues", "a,b")

    assert set(Job.objects.values_list("queue", "status").distinct()) == {
        ("a", JobStatus.SUCCEEDED),
        ("b", JobStatus.SUCCEEDED),
        ("c", JobStatus.READY),
    }
    left = Job.objects.filter(id__in=[h.id for h in handles["c"]])
    assert list(left.values_list("attempt", flat=True)) == [0, 0, 0]


def test_one_thread_runs_jobs_in_priority_order(run_worker):
    priorities = [0, 50, -20, 100, 10, -100, 50]
    for index, priority in enumerate(priorities):
        jobs.record_run.using(priority=priority).enqueue(f"{priority}:{index}")

    burst(run_worker, "--processes", "1", "--concurrency", "1")

    tokens = Execution.objects.order_by("id").values_list("token", flat=True)
    order = [tuple(map(int, token.split(":"))) for token in tokens]
    # Equal priorities run in enqueue order (run_at, then id).
    assert order == sorted(
        ((p, i) for i, p in enumerate(priorities)), key=lambda pi: (-pi[0], pi[1])
    )
