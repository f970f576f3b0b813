"""Django's own tasks on real ``runworkers`` processes.

Apart from starting the workers, these tests use only ``django.tasks``'s
public API: ``@task`` (tests/tasks.py), ``enqueue``, ``using``,
``get_result``, ``refresh``, ``TaskContext``, priorities, ``run_after`` and
an async task. ``TASKS["default"]`` (tests/settings.py) gives every task 3
attempts with a fixed 0.05 s backoff.
"""

import datetime as dt

import pytest
from django.utils import timezone

from django_bgjobs.backend import HAS_DJANGO_TASKS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not HAS_DJANGO_TASKS, reason="django.tasks needs Django 6.0 or later"
    ),
]

if HAS_DJANGO_TASKS:
    from django.tasks import TaskResultStatus, default_task_backend

    from tests import tasks


def burst(run_worker, *flags):
    """Run ``runworkers --burst`` until no task is due; return its output."""
    result = run_worker("--processes", "1", *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_tasks_run_on_workers_and_their_results_refresh(run_worker):
    added = tasks.add.enqueue(2, b=3)
    greeted = tasks.greet.enqueue("Ann", greeting="Hi")
    assert added.status == greeted.status == TaskResultStatus.READY

    burst(run_worker, "--queues", "default,tasks-other")

    added.refresh()
    assert added.status == TaskResultStatus.SUCCESSFUL
    assert added.return_value == 5
    assert added.enqueued_at <= added.started_at <= added.finished_at
    assert added.last_attempted_at == added.started_at
    assert (added.attempts, len(added.worker_ids), added.errors) == (1, 1, [])
    fetched = default_task_backend.get_result(greeted.id)
    assert fetched.task.queue_name == "tasks-other"
    assert fetched.return_value == "Hi, Ann!"
    assert tasks.greet.get_result(greeted.id).kwargs == {"greeting": "Hi"}


def test_a_failing_task_is_retried_per_options_and_lists_each_error(run_worker):
    result = tasks.fails.enqueue("boom")

    output = burst(run_worker)

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert len(result.errors) == 3
    for error in result.errors:
        assert error.exception_class_path == "builtins.ValueError"
        assert error.exception_class is ValueError
        assert 'tests/tasks.py", line' in error.traceback
        assert error.traceback.rstrip().endswith("ValueError: boom")
    assert result.finished_at >= result.last_attempted_at > result.started_at
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    # task_finished is sent once, from the except block of the last attempt:
    # Django's log line of it carries the traceback.
    line = f"Task id={result.id} path=tests.tasks.fails state=FAILED"
    assert output.count(line) == 1
    logged = output.split(line, 1)[1]
    assert logged.lstrip().startswith("Traceback (most recent call last)")
    assert "raise ValueError(message)" in logged


def test_a_context_task_sees_its_attempt_number(run_worker):
    result = tasks.flaky.enqueue(succeed_on=2)

    burst(run_worker)

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {
        "attempt": 2,
        "id": result.id,
        "status": "RUNNING",
        "errors": 1,
        "workers": 2,
    }
    [error] = result.errors
    assert error.exception_class_path == "builtins.RuntimeError"
    assert "RuntimeError: attempt 1 fails" in error.traceback


def test_higher_priorities_run_first_and_run_after_defers(run_worker):
    later = timezone.now() + dt.timedelta(seconds=1.5)
    deferred = tasks.record.using(priority=100, run_after=later).enqueue("later")
    low = tasks.record.using(priority=-20).enqueue("low")
    middle = tasks.record.enqueue("middle")
    high = tasks.record.using(priority=20).enqueue("high")

    burst(run_worker, "--concurrency", "1")

    for result in (deferred, low, middle, high):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
    ran = sorted((low, middle, high), key=lambda r: r.started_at)
    assert [r.return_value for r in ran] == ["high", "middle", "low"]
    # The highest priority of all, yet not before its run_after.
    assert deferred.started_at >= later


def test_an_async_task_runs_on_a_worker(run_worker):
    result = tasks.async_add.enqueue(20, 22)

    burst(run_worker)

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
