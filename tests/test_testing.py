"""The test helpers of ``django_bgjobs.testing``: inline mode, ``drain()``
and the assertions on what was enqueued, on the worker's own claim,
executor and recorder."""

import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import transaction
from django.test import override_settings

from django_bgjobs import JobStatus
from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.services.queues import pause_queues
from django_bgjobs.signals import (
    job_enqueued,
    job_retried,
    job_started,
    job_succeeded,
)
from django_bgjobs.testing import (
    DrainResult,
    EnqueuedJobs,
    TooManyJobs,
    assert_enqueued,
    assert_not_enqueued,
    capture_enqueued,
    drain,
    enqueued,
    run_inline,
)

from . import jobs
from .models import Execution


@pytest.fixture
def steps():
    """Collect ``(signal, task short name)`` of the job signals, in order."""
    seen = []
    receivers = {}
    for name, signal in [
        ("enqueued", job_enqueued),
        ("started", job_started),
        ("retried", job_retried),
        ("succeeded", job_succeeded),
    ]:

        def receiver(sender, _name=name, **kwargs):
            seen.append((_name, sender.rsplit(".", 1)[-1]))

        receivers[name] = receiver
        signal.connect(receiver)
    yield seen
    for name, signal in [
        ("enqueued", job_enqueued),
        ("started", job_started),
        ("retried", job_retried),
        ("succeeded", job_succeeded),
    ]:
        signal.disconnect(receivers[name])


# -- inline -------------------------------------------------------------------


@pytest.mark.django_db
def test_inline_runs_the_job_at_enqueue_and_records_it_as_a_worker_does(steps):
    with run_inline():
        handle = jobs.add.enqueue(2, 3)

    job = handle.refresh().job
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == 5
    assert job.attempt == 1
    assert job.finished_at is not None
    attempt = Attempt.objects.get(job=job)
    assert attempt.outcome == "succeeded"
    assert attempt.worker.endswith(":local")
    # The test's transaction stands in for autocommit: the job ran at once.
    assert ("started", "add") in steps
    assert ("succeeded", "add") in steps


@pytest.mark.django_db
def test_without_inline_mode_jobs_only_wait():
    handle = jobs.add.enqueue(2, 3)

    assert handle.refresh().status == JobStatus.READY
    assert not Attempt.objects.exists()


@pytest.mark.django_db
def test_inline_setting_turns_inline_on_and_run_inline_false_off():
    with override_settings(BGJOBS={"INLINE": True}):
        on = jobs.add.enqueue(1, 1)
        with run_inline(False):
            off = jobs.add.enqueue(1, 2)

    assert on.refresh().status == JobStatus.SUCCEEDED
    assert off.refresh().status == JobStatus.READY


@pytest.mark.django_db
def test_inline_retries_run_at_once_up_to_the_attempts():
    started = time.monotonic()
    with run_inline():
        # Four attempts, 7 s apart on a worker.
        handle = jobs.retries_value_errors_only.enqueue()

    assert time.monotonic() - started < 5
    job = handle.refresh().job
    assert job.status == JobStatus.FAILED
    assert job.attempt == 4
    assert Attempt.objects.filter(job=job, outcome="failed").count() == 4
    letter = DeadLetter.objects.get(job_id=job.pk)
    assert letter.reason.startswith("attempts exhausted (4)")


@pytest.mark.django_db
def test_inline_job_that_fails_then_succeeds_ends_succeeded():
    with run_inline():
        handle = jobs.fails_then_succeeds.enqueue("t", 2)

    assert handle.refresh().status == JobStatus.SUCCEEDED
    assert handle.result == 2
    outcomes = Attempt.objects.filter(job_id=handle.id).order_by("number")
    assert [a.outcome for a in outcomes] == ["failed", "failed", "succeeded"]


@pytest.mark.django_db
def test_inline_coroutine_job_uses_the_async_orm_inside_the_tests_transaction():
    # The job's sync_to_async calls come back to this thread, so its async
    # ORM queries see (and write into) the test's open transaction.
    with run_inline():
        handle = jobs.async_fails_then_succeeds.enqueue("inline-async", 1)

    assert (handle.refresh().status, handle.result) == (JobStatus.SUCCEEDED, 1)
    tokens = Execution.objects.values_list("token", flat=True)
    assert list(tokens) == ["inline-async:0"]


@pytest.mark.django_db
def test_inline_errors_are_recorded_not_raised_unless_asked():
    with run_inline():
        quiet = jobs.fails_permanently.enqueue()
    assert quiet.refresh().status == JobStatus.FAILED

    with (
        run_inline(raise_errors=True),
        pytest.raises(RuntimeError, match=r"^boom$"),
    ):
        jobs.always_fails.enqueue("boom")

    failed = Job.objects.get(task=jobs.always_fails.name)
    assert failed.status == JobStatus.FAILED
    assert failed.attempt == 3
    assert DeadLetter.objects.filter(job_id=failed.pk).exists()


@pytest.mark.django_db
@override_settings(BGJOBS={"INLINE": True, "INLINE_RAISE": True})
def test_inline_raise_setting_raises_the_jobs_error():
    with pytest.raises(KeyError, match="missing"):
        jobs.raises_key_error.enqueue()


@pytest.mark.django_db
def test_inline_atomic_job_commits_or_rolls_back_its_writes():
    with run_inline():
        kept = jobs.atomic_insert.enqueue("kept")
        dropped = jobs.atomic_insert.enqueue("dropped", fail=True)

    assert kept.refresh().status == JobStatus.SUCCEEDED
    assert dropped.refresh().status == JobStatus.FAILED
    assert list(Execution.objects.values_list("token", flat=True)) == ["kept"]


@pytest.mark.django_db
def test_jobs_enqueued_by_an_inline_job_run_after_it_ends(steps):
    with run_inline():
        parent = jobs.enqueues_add.enqueue(4, 5)

    child = Job.objects.get(pk=parent.refresh().result)
    assert child.status == JobStatus.SUCCEEDED
    assert child.result == 9
    ran = [step for step in steps if step[0] != "enqueued"]
    assert ran == [
        ("started", "enqueues_add"),
        ("succeeded", "enqueues_add"),
        ("started", "add"),
        ("succeeded", "add"),
    ]


@pytest.mark.django_db
def test_inline_delayed_job_waits_for_its_time():
    with run_inline():
        handle = jobs.add.using(delay=60).enqueue(1, 1)

    assert handle.refresh().status == JobStatus.SCHEDULED
    assert drain().total == 0
    assert drain(include_scheduled=True) == DrainResult(
        succeeded=1, attempts=1, jobs=(handle.id,)
    )


@pytest.mark.django_db
def test_inline_keyed_duplicate_runs_once():
    with run_inline():
        first = jobs.keyed_echo.enqueue("ann")
        again = jobs.keyed_echo.enqueue("ann")

    # The first finished, so its key was free again for the second.
    assert first.refresh().status == JobStatus.SUCCEEDED
    assert again.created
    assert again.refresh().status == JobStatus.SUCCEEDED
    with run_inline():
        waiting = jobs.keyed_echo.using(delay=60).enqueue("bob")
        duplicate = jobs.keyed_echo.enqueue("bob")
    assert not duplicate.created
    assert duplicate.id == waiting.id
    assert waiting.refresh().status == JobStatus.SCHEDULED


@pytest.mark.django_db
def test_inline_job_in_your_atomic_block_in_a_test_case_runs_at_once(mailoutbox):
    # The test's transaction never commits: the job cannot wait for it.
    with run_inline(), transaction.atomic():
        handle = jobs.add.enqueue(1, 2)
        assert handle.refresh().status == JobStatus.SUCCEEDED

    def rolled_back():
        with run_inline(), transaction.atomic():
            jobs.record_run.enqueue("gone")
            assert Execution.objects.exists()
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        rolled_back()
    # The job's row and its writes went with the block.
    assert not Execution.objects.exists()
    assert not Job.objects.filter(task=jobs.record_run.name).exists()


@pytest.mark.django_db(transaction=True)
def test_inline_job_runs_when_its_transaction_commits_and_never_after_rollback():
    def enqueue_then_fail():
        with transaction.atomic():
            jobs.record_run.enqueue("rolled back")
            raise RuntimeError("roll back")

    with run_inline():
        with transaction.atomic():
            jobs.record_run.enqueue("committed")
            assert not Execution.objects.exists()
        assert list(Execution.objects.values_list("token", flat=True)) == ["committed"]
        with pytest.raises(RuntimeError, match="roll back"):
            enqueue_then_fail()

    assert list(Execution.objects.values_list("token", flat=True)) == ["committed"]
    assert Job.objects.get().status == JobStatus.SUCCEEDED


@pytest.mark.django_db
def test_inline_job_of_a_paused_queue_waits_and_sees_its_context():
    pause_queues("held")
    with run_inline():
        held = jobs.add.using(queue="held").enqueue(1, 1)
        itself = jobs.describes_itself.enqueue()

    assert held.refresh().status == JobStatus.READY
    assert itself.refresh().result == [
        itself.id,
        jobs.describes_itself.name,
        "default",
        1,
        False,
    ]


def test_bgjobs_inline_fixture_turns_inline_on(bgjobs_inline, db):
    handle = jobs.add.enqueue(3, 3)

    assert handle.refresh().result == 6


# -- drain --------------------------------------------------------------------


@pytest.mark.django_db
def test_drain_runs_every_ready_job_and_counts_the_outcomes():
    adds = [jobs.add.enqueue(n, n) for n in range(3)]
    jobs.always_fails.enqueue()
    jobs.fails_permanently.enqueue()

    result = drain()

    assert result.succeeded == 3
    assert result.failed == 2
    assert result.cancelled == result.snoozed == 0
    assert result.attempts == 3 + 3 + 1
    assert result.total == 5
    assert [h.refresh().result for h in adds] == [0, 2, 4]
    assert DeadLetter.objects.count() == 2
    assert drain() == DrainResult()


@pytest.mark.django_db
def test_drain_claims_by_priority_like_a_worker(steps):
    jobs.noop.using(priority=-5).enqueue()
    jobs.add.using(priority=10).enqueue(1, 1)
    jobs.fails_then_succeeds.enqueue("x", 0)

    drain()

    started = [task for name, task in steps if name == "started"]
    assert started == ["add", "fails_then_succeeds", "noop"]


@pytest.mark.django_db
def test_drain_of_some_queues_leaves_the_others():
    a = jobs.add.using(queue="a").enqueue(1, 1)
    b = jobs.add.using(queue="b").enqueue(1, 2)
    c = jobs.add.using(queue="c").enqueue(1, 3)

    assert drain("a").jobs == (a.id,)
    assert drain(["b", "c"]).jobs == (b.id, c.id)
    assert drain().total == 0


@pytest.mark.django_db
def test_drain_runs_the_jobs_that_jobs_enqueue():
    parent = jobs.enqueues_add.enqueue(1, 2)

    result = drain()

    assert result.succeeded == 2
    assert Job.objects.get(pk=parent.refresh().result).result == 3


@pytest.mark.django_db
def test_drain_stops_at_max_jobs_with_an_error_naming_the_task():
    jobs.enqueues_itself.enqueue(0)

    with pytest.raises(
        TooManyJobs, match=r"max_jobs=5 jobs .* Ran: tests\.jobs\.enqueues_itself x5\."
    ):
        drain(max_jobs=5)

    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 5
    assert Job.objects.filter(status=JobStatus.READY).count() == 1


@pytest.mark.django_db
def test_drain_with_exactly_max_jobs_left_is_no_error():
    for n in range(3):
        jobs.add.enqueue(n, 1)

    assert drain(max_jobs=3).succeeded == 3


@pytest.mark.django_db
def test_drain_leaves_paused_queues_alone():
    held = jobs.add.using(queue="held").enqueue(1, 1)
    pause_queues("held")

    assert drain().total == 0
    assert drain(include_scheduled=True).total == 0
    assert held.refresh().status == JobStatus.READY


@pytest.mark.django_db
def test_drain_runs_a_snoozing_job_once_and_counts_it():
    handle = jobs.snoozes.enqueue(0.0)

    result = drain()

    assert result == DrainResult(snoozed=1, attempts=1, jobs=(handle.id,))
    # Snoozed for 0 s it is ready again; each drain runs it once more.
    assert drain().snoozed == 1
    later = jobs.snoozes.enqueue(3600)
    assert drain(include_scheduled=True).jobs == (handle.id, later.id)
    assert later.refresh().status == JobStatus.SCHEDULED


@pytest.mark.django_db
def test_drain_raise_errors_stops_at_the_first_failed_job():
    jobs.raises_key_error.enqueue()
    after = jobs.add.using(priority=-1).enqueue(1, 1)

    with pytest.raises(KeyError, match="missing"):
        drain(raise_errors=True)

    assert after.refresh().status == JobStatus.READY


@pytest.mark.django_db
def test_drain_records_unregistered_tasks_as_dead_letters():
    Job.objects.create(task="tests.jobs.nowhere", args=[], kwargs={})

    assert drain().failed == 1
    assert "nowhere" in DeadLetter.objects.get().reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_jobs": 0}, "max_jobs must be an int of 1 or more, got 0"),
        ({"max_jobs": True}, "max_jobs must be an int of 1 or more, got True"),
        ({"queue": []}, r"queue must be a name or names, got \[\]"),
        ({"queue": [1]}, r"queue must be a name or names, got \[1\]"),
    ],
)
def test_drain_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        drain(**kwargs)


@pytest.mark.django_db(transaction=True)
def test_drain_in_a_transactional_test_commits_each_outcome():
    jobs.record_run.enqueue("a")
    jobs.atomic_insert.enqueue("b")

    assert drain().succeeded == 2
    assert set(Execution.objects.values_list("token", flat=True)) == {"a", "b"}


def test_bgjobs_drain_fixture_is_drain(bgjobs_drain):
    assert bgjobs_drain is drain


# -- assertions ---------------------------------------------------------------


@pytest.mark.django_db
def test_assert_enqueued_matches_task_arguments_queue_and_count():
    jobs.add.enqueue(1, 2)
    jobs.add.using(queue="math").enqueue(1, 2)
    jobs.keyed_anything.enqueue(7, tags=("a", "b"))

    found = assert_enqueued(jobs.add, args=(1, 2), count=2)
    assert [job.queue for job in found] == ["default", "math"]
    assert_enqueued(jobs.add.name, queue="math")
    assert_enqueued(jobs.keyed_anything, args=[7], kwargs={"tags": ["a", "b"]})
    assert len(enqueued()) == 3
    assert enqueued(queue="math")[0].args == [1, 2]
    assert_not_enqueued(jobs.noop)
    assert_not_enqueued(jobs.add, args=(2, 1))


@pytest.mark.django_db
def test_assert_enqueued_failure_lists_what_was_enqueued_instead():
    other = jobs.add.enqueue(2, 2)

    with pytest.raises(AssertionError) as failure:
        assert_enqueued(jobs.add, args=[1, 2])

    message = str(failure.value)
    assert message.startswith(
        "expected at least 1 job(s) of tests.jobs.add args=[1, 2], found 0; "
        "enqueued were:\n"
    )
    assert f"#{other.id} tests.jobs.add args=[2, 2] kwargs={{}}" in message
    with pytest.raises(AssertionError, match=r"expected 2 job\(s\) .* found 1"):
        assert_enqueued(jobs.add, count=2)


@pytest.mark.django_db
def test_assert_enqueued_with_nothing_enqueued_says_so():
    with pytest.raises(AssertionError, match="found 0; no job was enqueued"):
        assert_enqueued(jobs.noop)


@pytest.mark.django_db
def test_assert_not_enqueued_failure_lists_the_jobs():
    job = jobs.noop.enqueue()

    with pytest.raises(
        AssertionError, match=rf"no job of any task, found 1:\n  #{job.id} "
    ):
        assert_not_enqueued()


@pytest.mark.django_db
def test_capture_enqueued_sees_only_the_blocks_jobs():
    jobs.add.enqueue(0, 0)
    with capture_enqueued() as captured:
        inside = jobs.add.enqueue(1, 1)
    jobs.add.enqueue(2, 2)

    assert [job.pk for job in captured()] == [inside.id]
    captured.assert_enqueued(jobs.add, args=[1, 1], count=1)
    captured.assert_not_enqueued(jobs.add, args=[0, 0])
    assert len(enqueued(jobs.add)) == 3


@pytest.mark.django_db
def test_assertions_count_jobs_that_already_ran_and_jobs_that_jobs_enqueued():
    with capture_enqueued() as captured, run_inline():
        jobs.enqueues_add.enqueue(1, 1)

    captured.assert_enqueued(jobs.enqueues_add, count=1)
    [child] = captured.assert_enqueued(jobs.add, args=[1, 1])
    assert child.status == JobStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_assertions_see_jobs_enqueued_by_other_threads():
    def enqueue():
        jobs.noop.enqueue()
        from django.db import connection

        connection.close()

    with capture_enqueued() as captured:
        thread = threading.Thread(target=enqueue)
        thread.start()
        thread.join()

    captured.assert_enqueued(jobs.noop, count=1)


def test_assertions_reject_what_is_not_a_task():
    with pytest.raises(TypeError, match="task must be a @background function"):
        EnqueuedJobs()(task=42)


def test_bgjobs_enqueued_fixture_reads_the_test_database(bgjobs_enqueued, db):
    jobs.noop.enqueue()

    bgjobs_enqueued.assert_enqueued(jobs.noop, count=1)


# -- the pytest plugin --------------------------------------------------------

PROBE = """
from django.conf import settings


def test_probe(request, bgjobs_drain, bgjobs_enqueued):
    from django_bgjobs.testing import EnqueuedJobs, drain

    assert request.config.pluginmanager.has_plugin("bgjobs")
    assert bgjobs_drain is drain
    assert isinstance(bgjobs_enqueued, EnqueuedJobs)
    assert not settings.configured
"""


def run_pytest(tmp_path, *flags):
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_plugin_loads_without_django_settings_or_pytest_django(tmp_path):
    done = run_pytest(tmp_path, "-p", "no:django", "-p", "no:xdist")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.slow
def test_plugin_is_disabled_by_p_no_bgjobs(tmp_path):
    done = run_pytest(tmp_path, "-p", "no:django", "-p", "no:bgjobs")

    assert done.returncode == 1
    assert "fixture 'bgjobs_drain' not found" in done.stdout


def test_this_suite_loads_the_plugins_fixtures_once(request):
    from django_bgjobs.testing import plugin

    assert request.config.pluginmanager.get_plugin("bgjobs") is plugin
    for name in ("bgjobs_workers", "bgjobs_faults", "bgjobs_inline", "bgjobs_drain"):
        defs = request._fixturemanager.getfixturedefs(name, request.node)
        assert len(defs) == 1, name
