"""Pausing and resuming queues from code (``services.queues``), the queue
overview (``services.queries.queue_overview``) and the ``bgjobs`` command."""

import datetime as dt
import io
import re
import subprocess

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_bgjobs.broker import get_broker
from django_bgjobs.exceptions import InvalidJob
from django_bgjobs.models import Job, QueueState
from django_bgjobs.services.queries import (
    distinct_values,
    queue_names,
    queue_overview,
    task_names,
)
from django_bgjobs.services.queues import pause_queues, resume_queues
from django_bgjobs.status import JobStatus
from tests.broker.test_conformance import claim_all, run_threads
from tests.conftest import worker_command, worker_env

pytestmark = pytest.mark.django_db


def make_job(**fields):
    fields.setdefault("task", "tests.jobs.noop")
    fields.setdefault("run_at", timezone.now() - dt.timedelta(minutes=1))
    return Job.objects.create(**fields)


def declared(**queues):
    """Override ``BGJOBS["QUEUES"]`` (conf resets on ``setting_changed``)."""
    return override_settings(BGJOBS={**settings.BGJOBS, "QUEUES": queues})


def paused():
    return dict(
        QueueState.objects.filter(paused_at__isnull=False).values_list(
            "name", "paused_by"
        )
    )


# -- services -----------------------------------------------------------------


def test_pause_stops_claims_of_the_queue_and_resume_restarts_them():
    job = make_job(queue="reports")
    other = make_job(queue="default")
    broker = get_broker()

    result = pause_queues(["reports"], by="alice")

    assert (result.changed, result.skipped) == (1, 0)
    assert paused() == {"reports": "alice"}
    assert [c.id for c in claim_all(broker)] == [other.id]

    result = resume_queues(["reports"])

    assert (result.changed, result.skipped) == (1, 0)
    assert paused() == {}
    assert [c.id for c in claim_all(broker)] == [job.id]


def test_pause_and_resume_are_idempotent_and_count_what_they_changed():
    pause_queues(["a"], by="first")

    again = pause_queues(["a", "b", "a"], by="second")

    assert (again.changed, again.skipped) == (1, 1)
    assert paused() == {"a": "first", "b": "second"}
    resumed = resume_queues(["a", "c"])
    assert (resumed.changed, resumed.skipped) == (1, 1)
    assert resume_queues("a").changed == 0
    assert paused() == {"b": "second"}
    assert QueueState.objects.get(name="a").paused_at is None


def test_a_single_name_is_one_queue_not_its_letters():
    assert pause_queues("emails").changed == 1
    assert paused() == {"emails": ""}


def test_nothing_to_pause_writes_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert pause_queues([]).changed == 0
        assert resume_queues([]).changed == 0


@pytest.mark.parametrize("bad", ["", "a b", "x" * 101, "é", None])
def test_invalid_queue_names_are_refused_before_any_write(bad):
    with pytest.raises(InvalidJob, match=re.escape(f"Invalid queue name {bad!r}")):
        pause_queues(["good", bad])
    with pytest.raises(InvalidJob, match=re.escape(f"Invalid queue name {bad!r}")):
        resume_queues(["good", bad])
    assert not QueueState.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_pause_committed_elsewhere_holds_at_the_next_claim():
    make_job(queue="reports")
    broker = get_broker()

    run_threads(1, lambda _: pause_queues(["reports"]))

    assert claim_all(broker) == []
    run_threads(1, lambda _: resume_queues(["reports"]))
    assert len(claim_all(broker)) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_resume_notifies_idle_workers_at_commit():
    from django_bgjobs.broker.postgresql import CHANNEL

    pause_queues(["reports", "mail", "gone"])
    QueueState.objects.create(name="running")
    listener = connection.copy()
    listener.connect()
    try:
        listener.connection.autocommit = True
        listener.connection.execute(f"LISTEN {CHANNEL}")
        resume_queues(["reports", "mail"])
        resume_queues(["reports"])  # not paused: nothing to announce
        QueueState.objects.filter(name__in=["gone", "running"]).delete()
        got = sorted(n.payload for n in listener.connection.notifies(timeout=1))
    finally:
        listener.close()
    assert got == ["gone", "mail", "reports"]


# -- overview -----------------------------------------------------------------


def test_overview_lists_queues_with_jobs_or_state_with_counts_and_age(
    django_assert_max_num_queries,
):
    now = timezone.now()
    make_job(queue="default", run_at=now - dt.timedelta(seconds=30))
    make_job(queue="default", run_at=now - dt.timedelta(seconds=5))
    make_job(
        queue="default",
        status=JobStatus.SCHEDULED,
        run_at=now + dt.timedelta(minutes=5),
    )
    make_job(queue="default", status=JobStatus.RUNNING)
    make_job(queue="mail", status=JobStatus.SUCCEEDED, finished_at=now)
    make_job(queue="mail", status=JobStatus.FAILED, finished_at=now)
    pause_queues(["mail", "empty"], by="ops")

    with django_assert_max_num_queries(5):
        overview = queue_overview(now=now)

    by_name = {queue.name: queue for queue in overview}
    assert [queue.name for queue in overview] == ["default", "empty", "mail"]
    default, empty, mail = overview
    assert (default.paused, empty.paused, mail.paused) == (False, True, True)
    assert (mail.paused_by, mail.paused_at is not None) == ("ops", True)
    assert {k: v for k, v in default.counts.items() if v} == {
        "ready": 2,
        "scheduled": 1,
        "running": 1,
    }
    assert default.oldest_ready_age == pytest.approx(30, abs=0.01)
    assert (mail.finished, mail.oldest_ready_age) == (2, None)
    assert sum(by_name["empty"].counts.values()) == 0
    assert {queue.limits for queue in overview} == {""}
    assert {queue.window for queue in overview} == {dt.timedelta(hours=24)}


def test_overview_counts_finished_jobs_of_the_window_and_every_unfinished_one():
    now = timezone.now()
    day = dt.timedelta(days=1)
    for age in (dt.timedelta(hours=1), dt.timedelta(hours=23), 2 * day, 40 * day):
        make_job(queue="mail", status=JobStatus.SUCCEEDED, finished_at=now - age)
    make_job(queue="mail", status=JobStatus.CANCELLED, finished_at=now - 3 * day)
    # Unfinished jobs count whatever their age.
    make_job(queue="mail", created_at=now - 40 * day, run_at=now - 40 * day)
    # A queue whose jobs all finished long ago is still listed, with zeros.
    make_job(queue="old", status=JobStatus.FAILED, finished_at=now - 40 * day)

    day_counts = {q.name: q.counts for q in queue_overview(now=now)}
    week = {q.name: q for q in queue_overview(now=now, window=7 * day)}

    assert list(day_counts) == ["mail", "old"]
    assert {k: v for k, v in day_counts["mail"].items() if v} == {
        "succeeded": 2,
        "ready": 1,
    }
    assert sum(day_counts["old"].values()) == 0
    assert {k: v for k, v in week["mail"].counts.items() if v} == {
        "succeeded": 3,
        "cancelled": 1,
        "ready": 1,
    }
    assert (week["mail"].window, week["mail"].finished) == (7 * day, 4)


@pytest.mark.parametrize("window", [dt.timedelta(0), dt.timedelta(seconds=-1)])
def test_overview_refuses_a_window_that_is_not_positive(window):
    with pytest.raises(ValueError, match="window must be positive"):
        queue_overview(window=window)


def test_queue_and_task_names_are_the_distinct_values_sorted_one_query_each(
    django_assert_num_queries,
):
    for queue, task in [("mail", "b.task"), ("a", "z.task"), ("mail", "b.task")]:
        make_job(queue=queue, task=task, status=JobStatus.SUCCEEDED)
    make_job(queue="reports", task="a.task")

    with django_assert_num_queries(2):
        queues, tasks = queue_names(), task_names()

    assert queues == ["a", "mail", "reports"]
    assert tasks == ["a.task", "b.task", "z.task"]


def test_distinct_values_refuses_a_column_without_its_own_index():
    with pytest.raises(ValueError, match="'status' is not one of"):
        distinct_values("status")


def test_distinct_values_of_an_empty_table_are_empty():
    assert (queue_names(), task_names()) == ([], [])


def test_overview_shows_declared_limits_and_declared_queues_without_jobs(
    django_assert_num_queries,
):
    make_job(queue="mail", status=JobStatus.FAILED, finished_at=timezone.now())
    make_job(queue="default")
    pause_queues(["paused"])
    queues = {
        "mail": {"rate": "30/s", "remove_on_fail": True},
        "orders": {"concurrency": 4, "key_concurrency": 1},
        "paused": {"key_rate": "5/10s"},
        "idle": {},  # declares nothing: not a queue of its own
    }

    with declared(**queues), django_assert_num_queries(5):
        overview = queue_overview()

    by_name = {queue.name: queue for queue in overview}
    assert list(by_name) == ["default", "mail", "orders", "paused"]
    assert {name: queue.limits for name, queue in by_name.items()} == {
        "default": "",
        "mail": "rate 30/s; remove failed at once",
        "orders": "concurrency 4, per key concurrency 1",
        "paused": "per key rate 5/10s",
    }
    orders = by_name["orders"]
    assert (orders.paused, orders.oldest_ready_age) == (False, None)
    assert set(orders.counts) == set(JobStatus.values)
    assert sum(orders.counts.values()) == 0
    assert by_name["mail"].counts["failed"] == 1
    assert by_name["paused"].paused


# -- the bgjobs command -------------------------------------------------------


def run(*args):
    out = io.StringIO()
    call_command("bgjobs", *args, stdout=out)
    return out.getvalue()


def test_command_pauses_resumes_and_lists_queues():
    make_job(queue="reports")
    make_job(queue="default", status=JobStatus.SUCCEEDED, finished_at=timezone.now())

    assert run("pause", "reports", "mail", "--by", "cron") == (
        "2 queue(s) paused, 0 already paused: reports, mail\n"
    )
    assert paused() == {"reports": "cron", "mail": "cron"}
    listing = run("queues").splitlines()
    assert re.split(r"\s{2,}", listing[0]) == [
        "QUEUE",
        "STATE",
        "SCHEDULED",
        "READY",
        "WAITING",
        "RUNNING",
        "SUCCEEDED (24 h)",
        "FAILED (24 h)",
        "CANCELLED (24 h)",
        "OLDEST DUE",
        "LIMITS",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in listing[1:]}
    counts = ["0", "0", "0", "0", "1", "0", "0"]
    assert rows["default"] == ["running", *counts, "-", "-"]
    assert rows["mail"] == ["paused", "0", "0", "0", "0", "0", "0", "0", "-", "-"]
    assert rows["reports"][:3] == ["paused", "0", "1"]
    assert re.fullmatch(r"\d+\.\ds", rows["reports"][-2])

    assert run("resume", "reports", "nope") == (
        "1 queue(s) resumed, 1 not paused: reports, nope\n"
    )
    assert paused() == {"mail": "cron"}


def test_command_lists_each_queues_limits_in_the_last_column():
    make_job(queue="default")
    queues = {
        "sms": {"rate": "30/s", "concurrency": 2},
        "reports": {"remove_on_complete": {"age": 3600, "count": 10}},
    }

    with declared(**queues):
        listing = run("queues").splitlines()

    assert listing[0].split()[-1] == "LIMITS"
    rows = {line.split()[0]: re.split(r"\s{2,}", line)[1:] for line in listing[1:]}
    zeros = ["0"] * 7
    assert rows["default"][-1] == "-"
    assert rows["reports"] == ["running", *zeros, "-", "keep completed 1h / newest 10"]
    assert rows["sms"] == ["running", *zeros, "-", "rate 30/s, concurrency 2"]
    assert list(rows) == ["default", "reports", "sms"]


def test_command_lists_nothing_when_no_queue_exists():
    assert run("queues") == "No queue has jobs or a paused state.\n"


def test_command_refuses_a_bad_queue_name_with_status_2():
    with pytest.raises(CommandError, match=r"Invalid queue name 'a b'") as caught:
        run("pause", "ok", "a b")
    assert caught.value.returncode == 2
    assert not QueueState.objects.exists()


@pytest.mark.slow
def test_command_line_exit_status_and_message_for_a_bad_name(transactional_db):
    command = [*worker_command()[:-1], "bgjobs", "resume", "bad name!"]
    done = subprocess.run(
        command, env=worker_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Invalid queue name 'bad name!'" in done.stderr


def test_reference_documents_every_subcommand_and_option():
    import argparse
    from pathlib import Path

    from django.core.management import load_command_class

    parser = load_command_class("django_bgjobs", "bgjobs").create_parser(
        "manage.py", "bgjobs"
    )
    [subparsers] = [
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ]
    options = {
        option
        for sub in subparsers.choices.values()
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    text = (
        Path(__file__).parent.parent / "docs/reference/bgjobs-command.md"
    ).read_text()
    documented = set(re.findall(r"^### `([a-z]+)", text, re.MULTILINE))
    flags = set(re.findall(r"^#### `(--[a-z-]+)", text, re.MULTILINE))
    assert documented == set(subparsers.choices)
    assert flags == options == {"--by"}
