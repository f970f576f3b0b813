"""System checks: a bad ``BGJOBS`` is reported as ``bgjobs.E001``."""

from django.core import checks
from django.test import override_settings

from django_bgjobs.checks import check_settings


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
