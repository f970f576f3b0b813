"""Enqueue builds a checked row, inserts it in the caller's transaction and
hands back a ``JobHandle``."""

import datetime as dt

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_bgjobs import (
    InvalidJob,
    InvalidPayload,
    JobDoesNotExist,
    JobSpec,
    JobStatus,
    PayloadTooLarge,
)
from django_bgjobs.broker import inserts
from django_bgjobs.decorators import JobOptions
from django_bgjobs.enqueue import build_job
from django_bgjobs.models import Job
from tests.jobs import add, always_fails, keyed_anything, keyed_echo, noop

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def unregistered_spec(**options):
    return JobSpec(add.func, "tests.unregistered", JobOptions(**options))


# -- build_job --


def test_build_job_fills_defaults_from_settings():
    job = build_job(noop, (), {}, NOW)

    assert (job.pk, job.task, job.queue, job.priority) == (
        None,
        noop.name,
        "default",
        0,
    )
    assert (job.status, job.run_at, job.created_at) == (JobStatus.READY, NOW, NOW)
    assert (job.max_attempts, job.timeout, job.result_ttl) == (3, None, None)
    assert (job.key, job.active_key, job.attempt) == (None, None, 0)


def test_build_job_takes_task_options():
    job = build_job(always_fails, ["x"], {"message": "m"}, NOW)

    assert (job.max_attempts, job.args, job.kwargs) == (3, ["x"], {"message": "m"})


@pytest.mark.django_db
def test_tuples_in_arguments_come_back_as_lists():
    handle = add.enqueue(1, (2, (3,)))

    assert handle.refresh().job.args == [1, [2, [3]]]


@pytest.mark.parametrize(
    ("delay", "status", "run_at"),
    [
        (30, JobStatus.SCHEDULED, NOW + dt.timedelta(seconds=30)),
        (dt.timedelta(minutes=2), JobStatus.SCHEDULED, NOW + dt.timedelta(minutes=2)),
        (0, JobStatus.READY, NOW),
    ],
)
def test_delay_schedules_the_job(delay, status, run_at):
    job = build_job(add.using(delay=delay), (1, 2), {}, NOW)

    assert (job.status, job.run_at) == (status, run_at)


def test_run_at_in_the_past_is_ready_at_that_time():
    past = NOW - dt.timedelta(days=1)

    job = build_job(add.using(run_at=past), (1, 2), {}, NOW)

    assert (job.status, job.run_at) == (JobStatus.READY, past)


def test_key_function_builds_the_key_from_the_arguments():
    job = build_job(keyed_echo, ("alice",), {}, NOW)

    assert (job.key, job.active_key) == ("keyed:alice", "keyed:alice")


@pytest.mark.parametrize("bad", [5, "", "k" * 256])
def test_key_function_must_return_a_short_str(bad):
    spec = unregistered_spec(key=lambda *args: bad)

    with pytest.raises(InvalidJob, match=r"The key function returned .*1-255 char str"):
        build_job(spec, (1, 2), {}, NOW)


def test_kwargs_must_be_a_dict():
    with pytest.raises(InvalidJob, match=r"kwargs must be a dict, got list"):
        build_job(add, (), [("a", 1)], NOW)


# -- enqueue --


@pytest.mark.django_db
def test_enqueue_inserts_a_row_and_returns_its_handle():
    handle = add.using(priority=-4).enqueue(2, b=3)

    job = Job.objects.get()
    assert (handle.id, handle.created, handle.status) == (job.id, True, "ready")
    assert (job.task, job.args, job.kwargs, job.priority) == (
        add.name,
        [2],
        {"b": 3},
        -4,
    )
    assert repr(handle) == f"<JobHandle #{job.id} tests.jobs.add ready>"


@pytest.mark.django_db
def test_enqueue_stores_every_column_as_the_orm_would():
    # enqueue() INSERTs through its own prepared statement (broker.inserts);
    # the row must be the one Model.save() writes for the same job.
    args, kwargs = ["Zoë ✓", {"n": [1, 2.5, None, True]}], {"b": "x\ny"}
    spec = add.using(
        priority=7, delay=30, key="k-1", limit_key="customer:9", timeout=4.5
    )
    handle = spec.enqueue(*args, **kwargs)
    twin = build_job(spec, args, kwargs, Job.objects.get(pk=handle.id).created_at)
    twin.key = twin.active_key = None  # the key is unique while unfinished
    twin.save(force_insert=True)

    ours, orm = Job.objects.get(pk=handle.id), Job.objects.get(pk=twin.pk)
    assert ours.pk != orm.pk
    assert handle.job._state.adding is False
    skip = {"id", "active_key", "key", "run_at"}  # unique / time-dependent
    for field in Job._meta.concrete_fields:
        if field.attname not in skip:
            assert getattr(ours, field.attname) == getattr(orm, field.attname), (
                field.attname
            )
    assert (ours.key, ours.active_key, ours.limit_key) == ("k-1", "k-1", "customer:9")
    assert ours.status == JobStatus.SCHEDULED
    assert ours.args == args
    assert ours.kwargs == kwargs


@pytest.mark.django_db
def test_non_json_argument_raises_and_writes_nothing():
    with pytest.raises(InvalidPayload, match=r"^args\[1\] is set"):
        add.enqueue(1, {2})

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_oversized_arguments_raise_and_write_nothing():
    with (
        override_settings(BGJOBS={"MAX_PAYLOAD_BYTES": 64}),
        pytest.raises(PayloadTooLarge, match=r"over the limit of 64 bytes"),
    ):
        add.enqueue("x" * 100, 1)

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_handle_refresh_reads_the_row_again():
    handle = add.enqueue(1, 2)
    Job.objects.filter(pk=handle.id).update(
        status=JobStatus.SUCCEEDED, result=3, error=""
    )

    assert (handle.status, handle.is_finished) == (JobStatus.READY, False)
    assert handle.refresh() is handle
    assert (handle.status, handle.result, handle.is_finished) == ("succeeded", 3, True)


@pytest.mark.django_db
def test_handle_of_a_deleted_job_raises_job_does_not_exist():
    handle = add.enqueue(1, 2)
    Job.objects.filter(pk=handle.id).delete()

    with pytest.raises(JobDoesNotExist, match=rf"Job {handle.id} no longer exists"):
        handle.refresh()


@pytest.mark.django_db
def test_wait_returns_a_finished_job_and_times_out_on_an_unfinished_one():
    done, pending = add.enqueue(1, 2), add.enqueue(3, 4)
    Job.objects.filter(pk=done.id).update(status=JobStatus.FAILED, error="E: x")

    assert done.wait(timeout=0) is done
    assert done.error == "E: x"
    with pytest.raises(TimeoutError, match=rf"Job {pending.id} is still ready after 0"):
        pending.wait(timeout=0)


# -- enqueue_many --


@pytest.mark.django_db
def test_enqueue_many_returns_handles_in_item_order():
    handles = add.enqueue_many([((i, i), {}) for i in range(5)])

    rows = Job.objects.in_bulk([handle.id for handle in handles])
    assert [rows[handle.id].args for handle in handles] == [[i, i] for i in range(5)]
    assert all(handle.created for handle in handles)


@pytest.mark.django_db
@pytest.mark.parametrize("per_statement", [3, 1000])
def test_enqueue_many_stores_every_job_as_the_orm_would(
    monkeypatch, per_statement, enqueued, django_capture_on_commit_callbacks
):
    # Without keys, enqueue_many INSERTs through broker.inserts.insert_many in
    # statements of a few rows (3 here, to cross statement boundaries) or
    # one; each row must be what Model.save() writes for the same call.
    monkeypatch.setattr(inserts, "ROWS_PER_STATEMENT", per_statement)
    monkeypatch.setattr(inserts, "PG_ROWS_PER_STATEMENT", per_statement)
    # Odd items' limit keys hold quotes, a backslash and non-ASCII text.
    items = [
        (
            (f'{i} "q" \\ ✓' if i % 2 else i, "Zoë ✓", {"n": [i, 2.5, None]}),
            {"seconds": i / 10},
        )
        for i in range(8)
    ]
    spec = keyed_anything.using(priority=3, delay=60, timeout=9.0)

    with django_capture_on_commit_callbacks(execute=True):
        handles = spec.enqueue_many(items)

    assert [h.id for h in handles] == sorted({h.id for h in handles})
    assert enqueued == [(spec.name, h.id, "default") for h in handles]
    for handle, (args, kwargs) in zip(handles, items, strict=True):
        row = Job.objects.get(pk=handle.id)
        twin = build_job(spec, args, kwargs, row.created_at)
        twin.save(force_insert=True)
        orm = Job.objects.get(pk=twin.pk)
        for field in Job._meta.concrete_fields:
            if field.attname not in {"id", "run_at"}:
                ours, theirs = getattr(row, field.attname), getattr(orm, field.attname)
                assert ours == theirs, field.attname
        assert row.limit_key == f"customer:{args[0]}"
        assert row.run_at == handles[0].job.run_at
        # The handle's Job is built on demand and matches the row.
        assert (handle.job.pk, handle.job.args, handle.job.limit_key) == (
            row.pk,
            row.args,
            row.limit_key,
        )
        assert handle.job._state.adding is False
        assert handle.status == JobStatus.SCHEDULED
        twin.delete()


@pytest.mark.django_db(transaction=True)
def test_enqueue_many_in_a_rolled_back_transaction_leaves_nothing():
    class Rollback(Exception):
        pass

    def enqueue_then_fail():
        with transaction.atomic():
            add.enqueue_many([((i, i), {}) for i in range(5)])
            assert Job.objects.count() == 5
            raise Rollback

    with pytest.raises(Rollback):
        enqueue_then_fail()

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue_many_of_nothing_writes_nothing():
    assert add.enqueue_many([]) == []
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue_many_with_one_bad_item_writes_nothing():
    items = [((1, 2), {}), ((1, dt.date(2024, 1, 1)), {})]

    with pytest.raises(InvalidPayload, match=r"^args\[1\] is datetime\.date"):
        add.enqueue_many(items)

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue_many_refuses_an_item_that_is_not_a_pair():
    with pytest.raises(InvalidJob, match=r"item 1 must be an \(args, kwargs\) pair"):
        add.enqueue_many([((1, 2), {}), (1, 2, 3)])

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue_many_announces_only_the_jobs_it_created(
    enqueued, django_capture_on_commit_callbacks
):
    held = keyed_echo.enqueue("a")

    with django_capture_on_commit_callbacks(execute=True):
        handles = keyed_echo.enqueue_many([(("a",), {}), (("b",), {}), (("b",), {})])

    assert handles[0].id == held.id
    assert enqueued == [(keyed_echo.name, handles[1].id, "default")]


@pytest.mark.django_db
def test_enqueue_announces_nothing_before_commit(
    enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        handle = noop.enqueue()

    assert enqueued == []
    for callback in callbacks:
        callback()
    assert enqueued == [(noop.name, handle.id, "default")]


def test_result_ttl_setting_is_copied_to_the_row():
    with override_settings(BGJOBS={"RESULT_TTL": 120, "DEFAULT_TIMEOUT": 9.5}):
        job = build_job(noop, (), {}, timezone.now())

    assert (job.result_ttl, job.timeout) == (120, 9.5)
