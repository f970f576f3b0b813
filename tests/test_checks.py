"""System checks: a bad ``BGJOBS`` is reported as ``bgjobs.E001``; the
django.tasks backend on a Django without django.tasks as ``bgjobs.E021``."""

import re
import sys

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_bgjobs import background, registry
from django_bgjobs.backend import HAS_DJANGO_TASKS, BgJobsBackend
from django_bgjobs.checks import (
    check_schedules,
    check_settings,
    check_tasks_backend,
)


def test_good_settings_and_supported_database_pass():
    assert check_settings() == []


def test_bad_setting_is_reported_as_e001_naming_the_key():
    with override_settings(BGJOBS={"LEASE_SECONDS": "long"}):
        errors = check_settings()

    assert [error.id for error in errors] == ["bgjobs.E001"]
    assert isinstance(errors[0], checks.Error)
    assert "BGJOBS['LEASE_SECONDS'] must be int or float, got str 'long'" in (
        errors[0].msg
    )


def test_e001_is_reported_by_the_check_framework():
    with override_settings(BGJOBS={"NO_SUCH_KEY": 1}):
        messages = checks.run_checks(tags=[checks.Tags.compatibility])

    ours = [message for message in messages if message.id.startswith("bgjobs.")]
    assert [message.id for message in ours] == ["bgjobs.E001"]
    assert "NO_SUCH_KEY" in ours[0].msg


TASKS_ON_BGJOBS = {
    "default": {"BACKEND": "django_bgjobs.backend.BgJobsBackend"},
    "other": {"BACKEND": "somewhere.else.Backend"},
}


@pytest.mark.skipif(HAS_DJANGO_TASKS, reason="Django 6 has django.tasks")
def test_the_tasks_backend_on_django_52_is_e021_and_refuses_to_build():
    with override_settings(TASKS=TASKS_ON_BGJOBS):
        errors = check_tasks_backend()

    assert [error.id for error in errors] == ["bgjobs.E021"]
    assert errors[0].msg.startswith(
        "TASKS['default'] names 'django_bgjobs.backend.BgJobsBackend', but "
        "django.tasks needs Django 6.0 or later; this is Django 5.2"
    )
    with pytest.raises(ImproperlyConfigured, match=r"needs Django 6\.0 or later"):
        BgJobsBackend("default", {})


@pytest.mark.skipif(not HAS_DJANGO_TASKS, reason="Django 5.2 has no django.tasks")
def test_the_tasks_backend_on_django_6_is_no_e021():
    with override_settings(TASKS=TASKS_ON_BGJOBS):
        assert check_tasks_backend() == []


@pytest.fixture
def declare():
    """Register ``@background`` tasks with schedules for one test only."""
    added = []

    def make(name, **options):
        spec = background(name=name, **options)(lambda: None)
        added.append(name)
        return spec

    yield make
    for name in added:
        registry._specs.pop(name, None)


def schedule_errors(schedules):
    with override_settings(BGJOBS={"SCHEDULES": schedules}):
        return [(e.id, e.msg) for e in check_schedules()]


def test_good_schedules_pass(declare):
    declare("tests.checks.ok", cron="0 8 * * *", tz="Europe/Moscow")
    assert (
        schedule_errors(
            {"n": {"task": "tests.jobs.noop", "interval": 60, "misfire": "all"}}
        )
        == []
    )


@pytest.mark.parametrize(
    ("entry", "check_id", "message"),
    [
        ({"cron": "61 * * * *"}, "bgjobs.E010", "Invalid cron expression '61"),
        ({"cron": "* * *"}, "bgjobs.E010", "has 3 fields"),
        ({"cron": "@daily", "tz": "Mars/Olympus"}, "bgjobs.E011", "Unknown time zone"),
        ({"interval": 0}, "bgjobs.E012", "Interval must be more than 0"),
        ({"interval": -1.5}, "bgjobs.E012", "Interval must be more than 0"),
        (
            {"interval": 5, "task": "no.such"},
            "bgjobs.E013",
            "'no.such' is not registered",
        ),
        ({"interval": 5, "misfire": "later"}, "bgjobs.E014", "Misfire policy"),
        ({"interval": 5, "args": [{1, 2}]}, "bgjobs.E014", "not JSON"),
        ({"interval": 5, "every": 3}, "bgjobs.E014", "unknown keys \\['every'\\]"),
    ],
)
def test_bad_settings_schedule_is_reported_with_its_id(entry, check_id, message):
    errors = schedule_errors({"bad": {"task": "tests.jobs.noop", **entry}})
    assert [e[0] for e in errors] == [check_id]
    assert re.search(message, errors[0][1])


def test_bad_code_schedule_is_reported_not_raised(declare):
    declare("tests.checks.bad", cron="0 25 * * *")
    errors = schedule_errors({})
    assert [e[0] for e in errors] == ["bgjobs.E010"]
    assert "Schedule 'tests.checks.bad': Invalid cron expression" in errors[0][1]


def test_a_name_declared_in_code_and_settings_is_e014(declare):
    declare("tests.checks.twice", interval=60)
    errors = schedule_errors(
        {"tests.checks.twice": {"task": "tests.jobs.noop", "interval": 5}}
    )
    assert [e[0] for e in errors] == ["bgjobs.E014"]
    assert "declared twice" in errors[0][1]


def test_croniter_missing_is_e015_only_when_a_cron_schedule_exists(monkeypatch):
    monkeypatch.setitem(sys.modules, "croniter", None)  # as if not installed
    assert schedule_errors({"n": {"task": "tests.jobs.noop", "interval": 60}}) == []
    errors = schedule_errors({"c": {"task": "tests.jobs.noop", "cron": "@daily"}})
    assert [e[0] for e in errors] == ["bgjobs.E015"]
    assert "pip install 'django-bgjobs[cron]'" in errors[0][1]
