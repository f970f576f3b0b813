"""System checks: a bad ``BGJOBS`` is reported as ``bgjobs.E001``; the
django.tasks backend on a Django without django.tasks as ``bgjobs.E021``."""

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_bgjobs.backend import HAS_DJANGO_TASKS, BgJobsBackend
from django_bgjobs.checks import check_settings, check_tasks_backend


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
