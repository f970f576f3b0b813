"""Operator actions through services.operations: the admin's only door."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_bgjobs.models import DeadLetter, Job
from django_bgjobs.services import operations
from django_bgjobs.status import JobStatus

from . import jobs

pytestmark = pytest.mark.django_db


def _finished(key=None, status=JobStatus.FAILED, task=jobs.add):
    handle = task.using(key=key).enqueue(1, 2)
    Job.objects.filter(pk=handle.id).update(status=status, active_key=None)
    return Job.objects.get(pk=handle.id)


def _dead_letter(job):
    return DeadLetter.objects.create(
        job=job, task=job.task, queue=job.queue, args=job.args, key=job.key,
        reason="attempts exhausted",
    )  # fmt: skip


def test_retry_waiting_job_makes_it_ready_now():
    handle = jobs.add.using(delay=3600).enqueue(1, 2)
    result = operations.retry_jobs([handle.id])
    job = handle.refresh().job
    assert (result.changed, result.created, result.skipped) == (1, [], 0)
    assert job.status == JobStatus.READY
    assert job.run_at <= job.created_at + (job.run_at - job.created_at)


def test_retry_finished_job_inserts_a_copy_and_marks_its_dead_letter():
    job = _finished()
    letter = _dead_letter(job)
    result = operations.retry_jobs(Job.objects.filter(pk=job.pk))
    [copy] = result.created
    letter.refresh_from_db()
    assert copy.pk != job.pk
    assert (copy.task, copy.args, copy.status) == (job.task, [1, 2], JobStatus.READY)
    assert letter.requeued_job_id == copy.pk
    assert letter.requeued_at is not None


def test_retry_skips_finished_job_whose_key_an_unfinished_job_holds():
    job = _finished(key="k1")
    jobs.add.using(key="k1").enqueue(5, 5)
    result = operations.retry_jobs([job.pk])
    assert (result.changed, len(result.created), result.skipped) == (0, 0, 1)
    assert Job.objects.filter(key="k1").count() == 2


def test_retry_of_two_finished_jobs_sharing_a_key_makes_one_copy():
    first, second = _finished(key="k2"), _finished(key="k2")
    result = operations.retry_jobs([first.pk, second.pk])
    assert len(result.created) == 1
    assert result.skipped == 1
    assert Job.objects.filter(active_key="k2").count() == 1


def test_requeue_of_dead_letters_sharing_a_key_makes_one_job():
    letters = [_dead_letter(_finished(key="k3")) for _ in range(2)]
    result = operations.requeue_dead_letters([d.pk for d in letters])
    assert (result.changed, result.skipped) == (1, 1)
    assert Job.objects.filter(active_key="k3").count() == 1
    assert DeadLetter.objects.filter(requeued_at__isnull=True).count() == 1


def test_requeue_twice_does_not_requeue_again():
    letter = _dead_letter(_finished())
    assert operations.requeue_dead_letters([letter.pk]).changed == 1
    again = operations.requeue_dead_letters([letter.pk])
    assert (again.changed, again.skipped) == (0, 1)


def test_cancel_asks_running_jobs_to_stop_and_frees_the_key_of_cancelled_ones():
    waiting = jobs.add.using(key="k4").enqueue(1, 1)
    running = jobs.add.enqueue(2, 2)
    done = jobs.add.enqueue(3, 3)
    Job.objects.filter(pk=running.id).update(status=JobStatus.RUNNING)
    Job.objects.filter(pk=done.id).update(status=JobStatus.SUCCEEDED)
    result = operations.cancel_jobs([waiting.id, running.id, done.id])
    assert (result.changed, result.requested, result.skipped) == (1, 1, 1)
    assert waiting.refresh().status == JobStatus.CANCELLED
    assert waiting.job.active_key is None
    assert running.refresh().status == JobStatus.RUNNING
    assert running.job.cancel_requested_at is not None
    assert done.refresh().job.cancel_requested_at is None
    assert jobs.add.using(key="k4").enqueue(1, 1).created
    # A second request changes nothing and keeps the first one's time.
    again = operations.cancel_jobs([running.id])
    assert (again.changed, again.requested, again.skipped) == (0, 0, 1)


def test_actions_work_in_chunks_with_queries_bounded_per_chunk(monkeypatch):
    monkeypatch.setattr(operations, "CHUNK", 10)
    jobs.add.enqueue_many([((i, i), {}) for i in range(25)])
    with CaptureQueriesContext(connection) as queries:
        result = operations.cancel_jobs(Job.objects.all())
    assert result.changed == 25
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 6  # per chunk: cancel waiting, flag running
