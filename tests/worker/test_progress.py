"""Job progress: noted in memory by ``set_progress``, written by the recorder
at most once per interval and always before the outcome, fenced by the
attempt. Real recorder threads and worker processes against the database."""

import threading
import time

import pytest
from django.utils import timezone

from django_bgjobs.broker import get_broker
from django_bgjobs.models import Job
from django_bgjobs.status import JobStatus
from django_bgjobs.worker.executor import Outcome, settle
from django_bgjobs.worker.process import ProcessOptions, Recorder, WorkerProcess
from django_bgjobs.worker.progress import ProgressNotes
from tests import jobs

# -- the notes (no database) --


def test_the_first_note_of_a_job_is_due_at_once_and_the_next_after_the_interval():
    notes = ProgressNotes(0.5, wake=lambda: None)

    notes.progress(1, 1, 10)
    assert notes.due(100.0) == ([(1, 1, 10)], None)
    notes.progress(1, 1, 20)
    notes.progress(1, 1, 30)
    assert notes.due(100.2) == ([], pytest.approx(0.3))
    assert notes.due(100.5) == ([(1, 1, 30)], None)


def test_the_final_note_of_a_finished_job_is_taken_whatever_the_interval():
    notes = ProgressNotes(60, wake=lambda: None)
    notes.progress(1, 1, 10)
    notes.due(0.0)
    notes.progress(1, 1, 99)

    assert notes.final({1, 2}) == [(1, 1, 99)]
    assert notes.due(1.0) == ([], None)
    assert notes.final({1}) == []
    assert notes.written == {}


def test_only_the_first_pending_note_of_a_job_wakes_the_writer():
    woken = []
    notes = ProgressNotes(60, wake=lambda: woken.append(1))

    for value in range(1000):
        notes.progress(1, 1, value)
    notes.progress(2, 1, 5)

    assert len(woken) == 2


# -- the recorder --


class CountingRecorder(Recorder):
    """A real recorder that also keeps each batch of progress it writes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes = []

    def _write_notes(self, broker, notes):
        self.writes.append(list(notes))
        super()._write_notes(broker, notes)


def claim_one(task, *args, worker="host:1:progress"):
    handle = task.enqueue(*args)
    (job,) = get_broker().claim(None, 1, worker, timezone.now(), 30)
    return handle, job


@pytest.mark.django_db(transaction=True)
def test_a_tight_loop_of_set_progress_writes_a_bounded_number_of_times():
    handle, job = claim_one(jobs.add, 1, 2)
    recorder = CountingRecorder("default", 0.005, progress_interval=0.05)
    recorder.thread.start()

    began = time.monotonic()
    for step in range(10_000):
        recorder.progress.progress(job.id, job.attempt, step / 100)
    took = time.monotonic() - began
    recorder.put(settle(job, Outcome(value=3)))
    recorder.stop()

    row = Job.objects.get(id=handle.id)
    assert (row.status, row.progress) == (JobStatus.SUCCEEDED, 99.99)
    assert row.progress_at is not None
    writes = sum(len(batch) for batch in recorder.writes)
    # At most: one at once, one per interval while the loop ran, the last.
    assert 1 <= writes <= 3 + took / 0.05, (writes, took)


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_while_the_job_runs_once_its_interval_passes(
    wait_until,
):
    handle, job = claim_one(jobs.add, 1, 2)
    recorder = Recorder("default", 0.005, progress_interval=0.1)
    recorder.thread.start()
    try:
        recorder.progress.progress(job.id, job.attempt, 10)
        recorder.progress.progress(job.id, job.attempt, 20)

        # No further call: the recorder's own timer writes the newest value.
        wait_until(lambda: Job.objects.get(id=handle.id).progress == 20, timeout=5)
        assert Job.objects.get(id=handle.id).status == JobStatus.RUNNING
    finally:
        recorder.stop()


@pytest.mark.django_db(transaction=True)
def test_a_stale_runs_progress_changes_nothing():
    handle, stale = claim_one(jobs.add, 1, 2, worker="host:1:old")
    broker = get_broker()
    broker.write_progress([(stale.id, stale.attempt, 30)], timezone.now())
    # The lease was lost and another worker claimed the job again.
    Job.objects.filter(id=handle.id).update(status=JobStatus.READY)
    (fresh,) = broker.claim(None, 1, "host:2:new", timezone.now(), 30)
    assert fresh.attempt == stale.attempt + 1

    assert broker.write_progress([(stale.id, stale.attempt, 99)], timezone.now()) == 0
    assert Job.objects.get(id=handle.id).progress == 30
    assert broker.write_progress([(fresh.id, fresh.attempt, 5)], timezone.now()) == 1
    assert Job.objects.get(id=handle.id).progress == 5


@pytest.mark.django_db(transaction=True)
def test_progress_after_the_outcome_changes_nothing():
    handle, job = claim_one(jobs.add, 1, 2)
    broker = get_broker()
    broker.record([settle(job, Outcome(value=3))])

    assert broker.write_progress([(job.id, job.attempt, 50)], timezone.now()) == 0
    assert Job.objects.get(id=handle.id).progress is None


# -- worker processes --


@pytest.mark.django_db(transaction=True)
def test_a_worker_stores_the_last_progress_of_plain_and_coroutine_jobs():
    plain = jobs.progress_loop.enqueue(10_000, last=100)
    coroutine = jobs.async_progress.enqueue(50)
    nothing = jobs.add.enqueue(1, 1)

    WorkerProcess(ProcessOptions(burst=True, concurrency=2)).run()

    rows = {row.id: row for row in Job.objects.all()}
    assert rows[plain.id].status == JobStatus.SUCCEEDED
    assert rows[plain.id].progress == 100
    assert rows[coroutine.id].progress == {"done": 50, "total": 50}
    assert rows[nothing.id].progress is None
    assert rows[nothing.id].progress_at is None
    assert plain.refresh().progress == 100


@pytest.mark.django_db(transaction=True)
def test_a_running_jobs_progress_is_visible_before_it_ends(settings, wait_until):
    settings.BGJOBS = {"PROGRESS_INTERVAL": 0.1}
    handle = jobs.progress_then_wait.enqueue([10, 20], 1.0)
    process = WorkerProcess(ProcessOptions(concurrency=1, grace=5))
    thread = threading.Thread(target=process.run)
    thread.start()
    try:
        wait_until(lambda: handle.refresh().progress == 20, timeout=10)
        assert handle.status == JobStatus.RUNNING
    finally:
        process.stop()
        thread.join(10)
    assert handle.refresh().status == JobStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_an_atomic_jobs_last_progress_commits_with_its_success():
    handle = jobs.atomic_progress.enqueue(1000)

    WorkerProcess(ProcessOptions(burst=True, concurrency=1)).run()

    row = Job.objects.get(id=handle.id)
    assert (row.status, row.progress) == (JobStatus.SUCCEEDED, {"step": 1000})
