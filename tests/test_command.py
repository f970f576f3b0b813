"""``runworkers`` flags: bad values stop with a ``CommandError`` before any
worker starts; good ones reach the supervisor as ``SupervisorOptions``."""

import os
import re

import pytest
from django.core.management import CommandError, call_command

from django_bgjobs.worker import supervisor
from django_bgjobs.worker.supervisor import SupervisorOptions


@pytest.fixture
def started(monkeypatch):
    """Capture the options the command would start the supervisor with."""
    calls = []

    def run(options):
        calls.append(options)
        return 0

    monkeypatch.setattr(supervisor, "run", run)
    return calls


@pytest.mark.parametrize("queues", ["a,b c", "emails,sms!", "x" * 101, "a,é"])
def test_invalid_queue_name_is_refused(started, queues):
    bad = next(q for q in queues.split(",") if not re.fullmatch(r"[a-z]{1,100}", q))
    with pytest.raises(CommandError, match=re.escape(f"invalid queue name {bad!r}")):
        call_command("runworkers", "--queues", queues)
    assert started == []


@pytest.mark.parametrize(
    "flags",
    [("--processes", "0"), ("--concurrency", "0"), ("--processes", "-2")],
)
def test_processes_and_concurrency_below_one_are_refused(started, flags):
    with pytest.raises(
        CommandError, match="--processes and --concurrency must be at least 1"
    ):
        call_command("runworkers", *flags)
    assert started == []


def test_negative_grace_is_refused(started):
    with pytest.raises(CommandError, match="--grace must be >= 0"):
        call_command("runworkers", "--grace", "-1")
    assert started == []


def test_non_numeric_processes_is_refused(started):
    with pytest.raises(
        CommandError, match="argument --processes: invalid int value: 'two'"
    ):
        call_command("runworkers", "--processes", "two")
    assert started == []


def test_flags_reach_the_supervisor(started):
    call_command(
        "runworkers",
        "--processes=2",
        "--concurrency=3",
        "--queues= emails, sms,",
        "--burst",
        "--grace=1.5",
    )
    assert started == [
        SupervisorOptions(
            processes=2, concurrency=3, queues=["emails", "sms"], burst=True, grace=1.5
        )
    ]


def test_defaults_run_one_process_per_cpu_on_every_queue(started):
    call_command("runworkers")
    assert started == [
        SupervisorOptions(
            processes=os.cpu_count() or 1,
            concurrency=8,
            queues=None,
            burst=False,
            grace=30.0,
        )
    ]


def test_supervisor_exit_code_becomes_the_command_exit_code(monkeypatch):
    monkeypatch.setattr(supervisor, "run", lambda options: 3)
    with pytest.raises(SystemExit, match=r"^3$"):
        call_command("runworkers", "--burst")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_jobs_per_process_below_one_is_refused(started, value):
    with pytest.raises(CommandError, match="--max-jobs-per-process must be at least 1"):
        call_command("runworkers", "--max-jobs-per-process", value)
    assert started == []


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_max_memory_per_process_must_be_positive(started, value):
    with pytest.raises(
        CommandError, match="--max-memory-per-process must be a number of MB > 0"
    ):
        call_command("runworkers", "--max-memory-per-process", value)
    assert started == []


def test_non_numeric_max_memory_is_refused(started):
    with pytest.raises(
        CommandError,
        match="argument --max-memory-per-process: invalid float value: '1GB'",
    ):
        call_command("runworkers", "--max-memory-per-process", "1GB")
    assert started == []


def test_recycling_flags_reach_the_supervisor(started):
    call_command(
        "runworkers", "--max-jobs-per-process=500", "--max-memory-per-process=256.5"
    )
    (options,) = started
    assert (options.max_jobs, options.max_memory_mb) == (500, 256.5)
