"""The executor runs a job and returns an Outcome; ``settle`` turns it into
the record to write, by the task's retry policy. No database is touched,
except by the async-ORM job that shows whose connection it uses."""

import asyncio
import dataclasses
import datetime as dt
import time

import pytest
from django.utils import timezone

from django_bgjobs import Permanent, TaskNotRegistered
from django_bgjobs.broker import ClaimedJob
from django_bgjobs.exceptions import JobCancelled
from django_bgjobs.status import AttemptOutcome, JobStatus, can_transition
from django_bgjobs.worker.executor import (
    Executor,
    JobTimeout,
    Outcome,
    interrupted,
    lost,
    settle,
)
from tests import jobs
from tests.jobs import (
    add,
    always_fails,
    describes_itself,
    exits,
    fails_permanently,
    raises_key_error,
    retries_at_once,
    retries_value_errors_only,
    returns_set,
    waits_for_cancel,
)
from tests.models import Execution

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def claimed(task, *, attempt=1, uncharged=0, max_attempts=3, args=(), kwargs=None):
    return ClaimedJob(
        id=41,
        task=task if isinstance(task, str) else task.name,
        queue="default",
        priority=0,
        args=list(args),
        kwargs=kwargs or {},
        attempt=attempt,
        uncharged=uncharged,
        max_attempts=max_attempts,
        timeout=None,
        result_ttl=None,
        worker="w1",
        started_at=NOW - dt.timedelta(seconds=1),
    )


@pytest.fixture
def run(django_db_blocker):
    """Return ``Executor().run``.

    Its ``close_old_connections`` may close a connection an earlier test left
    open, outside any transaction: allowed here, as in a worker.
    """

    def run(job):
        with django_db_blocker.unblock():
            return Executor().run(job)

    return run


def failed_with(error):
    return Outcome(error=error, traceback="Traceback ...", finished_at=NOW)


def after(seconds):
    return NOW + dt.timedelta(seconds=seconds)


# -- run --


def test_run_returns_the_value(run):
    outcome = run(claimed(add, args=[2], kwargs={"b": 3}))

    assert (outcome.ok, outcome.value, outcome.error) == (True, 5, None)


def test_run_returns_the_error_with_its_traceback(run):
    outcome = run(claimed(always_fails, kwargs={"message": "bad"}))

    assert not outcome.ok
    assert isinstance(outcome.error, RuntimeError)
    assert str(outcome.error) == "bad"
    assert "RuntimeError: bad" in outcome.traceback


def test_run_turns_a_non_json_return_value_into_a_permanent_error(run):
    outcome = run(claimed(returns_set))

    assert isinstance(outcome.error, Permanent)
    assert str(outcome.error).startswith("the job's return value: result is set")


def test_run_turns_system_exit_from_the_job_into_an_error(run):
    outcome = run(claimed(exits))

    assert isinstance(outcome.error, SystemExit)
    assert "SystemExit" in outcome.traceback


def test_run_of_an_unregistered_task_returns_task_not_registered(run):
    outcome = run(claimed("shop.tasks.removed"))

    assert isinstance(outcome.error, TaskNotRegistered)
    assert "'shop.tasks.removed'" in str(outcome.error)


# -- settle --


def test_success_completes_the_job_with_its_result():
    job = claimed(add)

    record = settle(job, Outcome(value={"sum": 5}, finished_at=NOW))

    assert (record.job, record.status, record.outcome) == (
        job,
        JobStatus.SUCCEEDED,
        AttemptOutcome.SUCCEEDED,
    )
    assert (record.result, record.finished_at, record.run_at) == ({"sum": 5}, NOW, None)
    assert (record.error, record.reason) == ("", "")


@pytest.mark.parametrize(("attempt", "backoff"), [(1, 0.05), (2, 0.1)])
def test_failure_with_attempts_left_is_scheduled_after_the_backoff(attempt, backoff):
    record = settle(
        claimed(always_fails, attempt=attempt), failed_with(RuntimeError("boom"))
    )

    assert (record.status, record.outcome) == (
        JobStatus.SCHEDULED,
        AttemptOutcome.FAILED,
    )
    assert record.run_at == after(backoff)
    assert (record.error_class, record.error_message) == ("RuntimeError", "boom")
    assert (record.traceback, record.error) == ("Traceback ...", "RuntimeError: boom")


def test_failure_with_zero_backoff_is_ready_at_once():
    record = settle(claimed(retries_at_once), failed_with(RuntimeError("again")))

    assert (record.status, record.run_at) == (JobStatus.READY, NOW)


def test_exhausted_attempts_fail_the_job_with_a_reason():
    record = settle(claimed(always_fails, attempt=3), failed_with(RuntimeError("boom")))

    assert (record.status, record.run_at) == (JobStatus.FAILED, None)
    assert record.reason == "attempts exhausted (3): RuntimeError: boom"


def test_uncharged_runs_do_not_count_against_attempts():
    job = claimed(always_fails, attempt=3, uncharged=1)

    record = settle(job, failed_with(RuntimeError("boom")))

    assert (record.status, record.run_at) == (JobStatus.SCHEDULED, after(0.1))


def test_max_attempts_stored_on_the_job_wins_over_the_task():
    job = claimed(always_fails, attempt=3, max_attempts=5)

    record = settle(job, failed_with(RuntimeError("boom")))

    assert record.status == JobStatus.SCHEDULED


def test_permanent_error_fails_on_the_first_attempt():
    job = claimed(fails_permanently, max_attempts=5)

    record = settle(job, failed_with(Permanent("card declined")))

    assert record.status == JobStatus.FAILED
    assert record.reason == (
        "permanent error: django_bgjobs.exceptions.Permanent: card declined"
    )


def test_dont_retry_on_error_fails_at_once():
    job = claimed(raises_key_error, max_attempts=5)

    record = settle(job, failed_with(KeyError("missing")))

    assert record.status == JobStatus.FAILED
    assert record.reason == "not retryable: KeyError: 'missing'"


def test_retry_on_retries_only_the_listed_errors():
    job = claimed(retries_value_errors_only, max_attempts=4)

    retried = settle(job, failed_with(ValueError("retry me")))
    refused = settle(job, failed_with(TypeError("wrong")))

    assert (retried.status, retried.run_at) == (JobStatus.SCHEDULED, after(7))
    assert (refused.status, refused.reason) == (
        JobStatus.FAILED,
        "not retryable: TypeError: wrong",
    )


def test_unregistered_task_fails_at_once_naming_the_task(run):
    job = claimed("shop.tasks.removed")
    outcome = run(job)

    record = settle(job, outcome)

    assert (record.status, record.outcome) == (JobStatus.FAILED, AttemptOutcome.FAILED)
    assert record.error_class == "django_bgjobs.exceptions.TaskNotRegistered"
    assert record.reason.startswith("Task 'shop.tasks.removed' is not registered")


def test_non_json_return_value_fails_at_once_without_retrying(run):
    first = settle(claimed(returns_set), run(claimed(returns_set)))

    assert first.status == JobStatus.FAILED
    assert first.error_class == "django_bgjobs.exceptions.Permanent"
    assert first.result is None
    assert first.reason.startswith("permanent error: ")
    assert "result is set" in first.reason


def test_system_exit_from_a_job_is_not_retried(run):
    record = settle(claimed(exits), run(claimed(exits)))

    assert record.status == JobStatus.FAILED
    assert record.reason.startswith("not retryable: SystemExit")


# -- shutdown and lost workers --


def test_interrupted_job_goes_back_to_ready_uncharged():
    record = interrupted(claimed(add, attempt=2), NOW)

    assert (record.status, record.outcome, record.run_at) == (
        JobStatus.READY,
        AttemptOutcome.INTERRUPTED,
        NOW,
    )
    assert record.uncharge == 1


def test_lost_job_goes_back_to_ready_while_attempts_remain():
    record = lost(claimed(add, attempt=2, max_attempts=3), NOW)

    assert (record.status, record.outcome, record.run_at) == (
        JobStatus.READY,
        AttemptOutcome.LOST,
        NOW,
    )
    assert record.uncharge == 0
    assert "lease of worker w1 expired" in record.error_message


def test_lost_job_fails_once_its_attempts_are_spent():
    record = lost(claimed(add, attempt=3, max_attempts=3), NOW)

    assert (record.status, record.run_at) == (JobStatus.FAILED, None)
    assert record.reason == "worker lost; attempts exhausted (3)"


def test_every_record_is_an_allowed_transition_from_running():
    job = claimed(always_fails, attempt=1)
    records = [
        settle(job, Outcome(value=1, finished_at=NOW)),
        settle(job, failed_with(RuntimeError())),
        settle(claimed(retries_at_once), failed_with(RuntimeError())),
        settle(claimed(always_fails, attempt=3), failed_with(RuntimeError())),
        interrupted(job, NOW),
        lost(job, NOW),
    ]

    statuses = {record.status for record in records}

    assert statuses == {
        JobStatus.SUCCEEDED,
        JobStatus.SCHEDULED,
        JobStatus.READY,
        JobStatus.FAILED,
    }
    assert all(can_transition(JobStatus.RUNNING, status) for status in statuses)


def test_settle_escapes_nul_and_lone_surrogates_in_error_texts():
    error = RuntimeError("nul \x00 and \ud800")
    record = settle(claimed(add), Outcome(error=error, traceback="tb \x00"))

    assert record.error_message == "nul \\x00 and \\ud800"
    assert record.traceback == "tb \\x00"
    record.error.encode("utf-8")


# -- the running job's context --


def test_current_job_outside_a_worker_is_an_inline_context_never_cancelled():
    from django_bgjobs import current_job

    job = current_job()
    assert (job.id, job.is_cancelled()) == (None, False)
    job.raise_if_cancelled()  # does not raise
    assert jobs.describes_itself() == [None, "", "", 0, False]


def test_current_job_in_a_run_describes_the_run_and_sees_the_cancel(run):
    job = claimed(describes_itself, attempt=2)
    outcome = run(job)
    assert outcome.value == [job.id, job.task, job.queue, 2, False]
    job.cancel.set()
    assert run(job).value == [job.id, job.task, job.queue, 2, True]


def test_job_cancelled_ends_the_job_cancelled_without_retry(run):
    job = claimed(waits_for_cancel)
    job.cancel.set()
    record = settle(job, run(job))
    assert (record.status, record.outcome) == (
        JobStatus.CANCELLED,
        AttemptOutcome.CANCELLED,
    )
    assert record.error == f"JobCancelled: job {job.id} was cancelled by an operator"
    assert (record.run_at, record.reason) == (None, "")
    assert can_transition(JobStatus.RUNNING, record.status)


def test_snooze_reschedules_without_charging_or_retry_policy():
    from django_bgjobs import Snooze

    job = claimed(always_fails, attempt=3, max_attempts=3)
    record = settle(job, failed_with(Snooze(30, "rate limited")))
    assert (record.status, record.outcome) == (
        JobStatus.SCHEDULED,
        AttemptOutcome.SNOOZED,
    )
    assert record.run_at == NOW + dt.timedelta(seconds=30)
    assert record.uncharge == 1
    assert record.error == "django_bgjobs.exceptions.Snooze: rate limited"
    assert settle(job, failed_with(Snooze(0))).status == JobStatus.READY


# -- coroutine jobs --


def fresh(task, *, timeout=None, **kwargs):
    """A claimed job started now (``claimed`` starts its jobs in 2024)."""
    return dataclasses.replace(
        claimed(task, **kwargs), timeout=timeout, started_at=timezone.now()
    )


def test_run_completes_a_coroutine_job_from_synchronous_code(run):
    outcome = run(fresh(jobs.async_sleep, args=[0.01], kwargs={"value": [1, 2]}))

    assert (outcome.ok, outcome.value) == (True, [1, 2])


def test_run_completes_a_coroutine_job_when_the_thread_runs_an_event_loop(run):
    async def caller():
        return run(fresh(jobs.async_sleep, args=[0.01], kwargs={"value": "ok"}))

    outcome = asyncio.run(caller())

    assert (outcome.ok, outcome.value) == (True, "ok")


def test_run_completes_a_coroutine_that_a_plain_function_returns(run):
    outcome = run(fresh(jobs.returns_coroutine, args=[7]))

    assert (outcome.ok, outcome.value) == (True, 7)


def test_current_job_inside_a_coroutine_job_is_its_run(run):
    outcome = run(fresh(jobs.async_current_job, attempt=2))

    assert outcome.value == {
        "id": 41,
        "attempt": 2,
        "task": "tests.jobs.async_current_job",
    }


def test_a_coroutine_jobs_error_is_settled_like_any_error(run):
    job = fresh(jobs.async_overruns, kwargs={"seconds": "not a number"})

    outcome = run(job)

    assert isinstance(outcome.error, TypeError)
    assert "TypeError" in outcome.traceback
    record = settle(job, outcome)
    assert record.outcome == AttemptOutcome.FAILED
    assert record.status in (JobStatus.SCHEDULED, JobStatus.READY)
    assert record.run_at is not None


def test_a_coroutine_job_past_its_timeout_is_cancelled_and_timed_out(run):
    job = fresh(jobs.async_overruns, timeout=0.1, max_attempts=1)
    began = time.monotonic()

    outcome = run(job)

    assert time.monotonic() - began < 2
    assert isinstance(outcome.error, JobTimeout)
    assert str(outcome.error) == "the job ran past its timeout of 0.1 s"
    record = settle(job, outcome)
    assert (record.status, record.outcome) == (
        JobStatus.FAILED,
        AttemptOutcome.TIMED_OUT,
    )
    assert record.reason.startswith("timed out; attempts exhausted (1)")


def test_a_coroutine_jobs_own_timeout_error_is_an_ordinary_error(run):
    outcome = run(fresh(jobs.async_raises_timeout, timeout=30))

    assert type(outcome.error) is TimeoutError
    assert str(outcome.error) == "the upstream API timed out"


def test_a_cancelled_coroutine_job_ends_with_job_cancelled():
    job = fresh(jobs.async_waits_for_cancel)

    async def cancel_soon():
        task = asyncio.create_task(Executor().arun(job, own_connections=False))
        await asyncio.sleep(0.05)
        job.cancel.set()
        task.cancel()
        return await task

    outcome = asyncio.run(cancel_soon())

    assert isinstance(outcome.error, JobCancelled)
    assert settle(job, outcome).status == JobStatus.CANCELLED


def test_a_coroutine_job_cancelled_by_anyone_else_propagates_the_cancel():
    job = fresh(jobs.async_waits_for_cancel)

    async def cancel_soon():
        task = asyncio.create_task(Executor().arun(job, own_connections=False))
        await asyncio.sleep(0.05)
        task.cancel()
        return await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancel_soon())


@pytest.mark.django_db(transaction=True)
def test_a_coroutine_job_run_from_synchronous_code_uses_the_async_orm():
    job = fresh(jobs.async_fails_then_succeeds, args=["orm", 1])

    first = Executor().run(job)
    second = Executor().run(job)

    assert str(first.error) == "failure 1"
    assert (second.ok, second.value) == (True, 1)
    assert list(Execution.objects.values_list("token", flat=True)) == ["orm:0"]
