"""``current_job()`` per thread and per asyncio task, and ``set_progress``'s
checks. No database: the sink here is a list."""

import asyncio
import threading

import pytest

from django_bgjobs import current_job
from django_bgjobs.context import INLINE, JobContext, running
from django_bgjobs.exceptions import InvalidPayload


class ListSink:
    def __init__(self):
        self.notes = []

    def progress(self, job_id, attempt, value):
        self.notes.append((job_id, attempt, value))


def test_outside_a_run_current_job_is_the_inline_context():
    assert current_job() is INLINE
    assert current_job().id is None


def test_running_sets_the_context_for_the_block_only():
    context = JobContext(7, "t", "q", 1)

    with running(context):
        assert current_job() is context
    assert current_job() is INLINE


def test_each_thread_sees_its_own_job():
    seen = {}
    barrier = threading.Barrier(2)

    def run(job_id):
        with running(JobContext(job_id)):
            barrier.wait(5)
            seen[job_id] = current_job().id

    threads = [threading.Thread(target=run, args=(i,)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert seen == {1: 1, 2: 2}


def test_each_asyncio_task_sees_its_own_job():
    async def run(job_id):
        with running(JobContext(job_id)):
            await asyncio.sleep(0.01)  # the other task runs meanwhile
            return current_job().id

    async def both():
        return await asyncio.gather(run(1), run(2))

    assert asyncio.run(both()) == [1, 2]


@pytest.mark.parametrize(
    "value", [0, 55.5, 100, None, True, "copying", [1, 2], {"done": 4, "total": 9}]
)
def test_set_progress_passes_any_json_to_the_sink(value):
    sink = ListSink()

    JobContext(3, attempt=2, progress=sink).set_progress(value)

    assert sink.notes == [(3, 2, value)]


def test_set_progress_outside_a_worker_checks_the_value_and_drops_it():
    current_job().set_progress(50)

    with pytest.raises(ValueError, match=r"progress 101 is outside 0\.\.100"):
        current_job().set_progress(101)


@pytest.mark.parametrize("value", [-1, 100.5, -0.001])
def test_set_progress_refuses_a_number_outside_0_to_100(value):
    sink = ListSink()

    with pytest.raises(ValueError, match=r"is outside 0\.\.100: pass a percentage"):
        JobContext(3, progress=sink).set_progress(value)
    assert sink.notes == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), r"progress is object, which is not JSON"),
        ({"eta": 1j}, r"progress\['eta'\] is complex, which is not JSON"),
        (float("nan"), r"progress is nan, which JSON cannot hold"),
        ({1: "a"}, r"progress has a key 1 of type int"),
    ],
)
def test_set_progress_refuses_a_value_that_is_not_json(value, message):
    sink = ListSink()

    with pytest.raises(TypeError, match=message) as raised:
        JobContext(3, progress=sink).set_progress(value)
    assert isinstance(raised.value, InvalidPayload)
    assert sink.notes == []
