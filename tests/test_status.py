"""The lifecycle table and the mapping to Django's ``TaskResultStatus``."""

import pytest

from django_bgjobs.status import (
    CLAIMABLE,
    FINISHED,
    TRANSITIONS,
    UNFINISHED,
    JobStatus,
    can_transition,
    to_task_result_status,
)

ALL = set(JobStatus.values)


def test_unfinished_and_finished_split_every_status():
    assert set(UNFINISHED) | set(FINISHED) == ALL
    assert not set(UNFINISHED) & set(FINISHED)
    assert set(CLAIMABLE) < set(UNFINISHED)


def test_transitions_name_only_known_statuses_and_verbs():
    for (source, target), verb in TRANSITIONS.items():
        assert {source, target} <= ALL, (source, target)
        assert verb.isidentifier(), verb


def test_every_status_is_reachable_and_every_unfinished_one_can_move_on():
    targets = {target for _, target in TRANSITIONS}
    sources = {source for source, _ in TRANSITIONS}

    assert ALL - {JobStatus.WAITING_CHILDREN} <= targets
    assert set(UNFINISHED) <= sources


def test_only_claimable_statuses_are_claimed_into_running():
    claims = {
        source for (source, target), verb in TRANSITIONS.items() if verb == "claim"
    }

    assert claims == set(CLAIMABLE)
    assert all(
        TRANSITIONS[(status, JobStatus.RUNNING)] == "claim" for status in CLAIMABLE
    )


def test_running_job_moves_to_every_outcome_a_worker_records():
    outcomes = {
        JobStatus.SUCCEEDED: "complete",
        JobStatus.FAILED: "fail",
        JobStatus.SCHEDULED: "retry",
        JobStatus.READY: "release",
    }

    for target, verb in outcomes.items():
        assert TRANSITIONS[(JobStatus.RUNNING, target)] == verb


def test_finished_statuses_are_final():
    # Requeueing inserts a new job; a finished row never moves again.
    leaving = [pair for pair in TRANSITIONS if pair[0] in FINISHED]

    assert leaving == []


def test_can_transition_follows_the_table():
    assert can_transition(JobStatus.READY, JobStatus.RUNNING)
    assert can_transition(JobStatus.SCHEDULED, JobStatus.CANCELLED)
    assert not can_transition(JobStatus.SUCCEEDED, JobStatus.READY)
    assert not can_transition(JobStatus.READY, JobStatus.SUCCEEDED)
    assert not can_transition(JobStatus.RUNNING, JobStatus.WAITING_CHILDREN)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (JobStatus.SCHEDULED, "READY"),
        (JobStatus.READY, "READY"),
        (JobStatus.WAITING_CHILDREN, "READY"),
        (JobStatus.RUNNING, "RUNNING"),
        (JobStatus.SUCCEEDED, "SUCCESSFUL"),
        (JobStatus.FAILED, "FAILED"),
        (JobStatus.CANCELLED, "FAILED"),
    ],
)
def test_to_task_result_status_maps_each_status(status, expected):
    assert to_task_result_status(status) == expected
    assert to_task_result_status(str(status.value)) == expected


def test_task_result_status_names_exist_in_django_tasks():
    tasks = pytest.importorskip("django.tasks", reason="django.tasks needs Django 6")

    names = {to_task_result_status(status) for status in JobStatus.values}

    assert names == set(tasks.TaskResultStatus.__members__)
