"""``BGJOBS`` is read lazily into a frozen ``Settings``, checked, and re-read
when the setting changes."""

import dataclasses

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_bgjobs.conf import Settings, get_settings


def test_defaults_apply_when_bgjobs_is_empty():
    with override_settings(BGJOBS={}):
        conf = get_settings()

    assert conf == Settings()
    assert (conf.DEFAULT_QUEUE, conf.DEFAULT_PRIORITY) == ("default", 0)
    assert (conf.DEFAULT_ATTEMPTS, conf.DEFAULT_BACKOFF) == (3, "exponential")
    assert (conf.BACKOFF_DELAY, conf.BACKOFF_MAX, conf.BACKOFF_JITTER) == (
        2.0,
        3600.0,
        True,
    )
    assert (conf.MAX_PAYLOAD_BYTES, conf.LEASE_SECONDS) == (262144, 30.0)
    assert (conf.DEFAULT_TIMEOUT, conf.RESULT_TTL) == (None, None)


def test_defaults_apply_when_bgjobs_is_missing(settings):
    # pytest-django's delattr sends no setting_changed: clear the cache here.
    del settings.BGJOBS
    get_settings.cache_clear()
    try:
        assert get_settings() == Settings()
    finally:
        get_settings.cache_clear()


def test_settings_are_re_read_when_overridden_and_restored():
    before = get_settings()

    with override_settings(BGJOBS={"LEASE_SECONDS": 90, "DEFAULT_QUEUE": "mail"}):
        inside = get_settings()

    assert (inside.LEASE_SECONDS, inside.DEFAULT_QUEUE) == (90, "mail")
    assert get_settings() == before
    assert before.POLL_INTERVAL == 0.05  # from tests/settings.py


def test_settings_are_cached_between_changes():
    assert get_settings() is get_settings()


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError, match="LEASE_SECONDS"):
        get_settings().LEASE_SECONDS = 1


def test_bad_settings_raise_only_when_read():
    # Entering the override sends setting_changed; it must not validate yet.
    with override_settings(BGJOBS={"NOPE": 1}):  # noqa: SIM117
        with pytest.raises(ImproperlyConfigured, match="NOPE"):
            get_settings()
    assert get_settings().POLL_INTERVAL == 0.05


def test_unknown_key_is_named_with_the_known_ones():
    with (
        override_settings(BGJOBS={"LEASE_SECOND": 30}),
        pytest.raises(
            ImproperlyConfigured,
            match=r"BGJOBS\['LEASE_SECOND'\] is not a setting .*LEASE_SECONDS",
        ),
    ):
        get_settings()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "LEASE_SECONDS",
            "30",
            r"'LEASE_SECONDS'\] must be int or float, got str '30'",
        ),
        ("CLAIM_BATCH_MAX", True, r"'CLAIM_BATCH_MAX'\] must be int, got bool True"),
        ("BACKOFF_JITTER", 1, r"'BACKOFF_JITTER'\] must be bool, got int 1"),
        ("DEFAULT_QUEUE", None, r"'DEFAULT_QUEUE'\] must be str, got NoneType None"),
        ("DEFAULT_TIMEOUT", "5", r"must be int or float or None, got str '5'"),
    ],
)
def test_wrong_type_names_key_and_value(key, value, message):
    with (
        override_settings(BGJOBS={key: value}),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        get_settings()


@pytest.mark.parametrize(
    ("key", "value"), [("LEASE_SECONDS", 0), ("PRUNE_BATCH", -1), ("RESULT_TTL", -5)]
)
def test_non_positive_numbers_are_refused(key, value):
    with (
        override_settings(BGJOBS={key: value}),
        pytest.raises(
            ImproperlyConfigured,
            match=rf"BGJOBS\['{key}'\] must be greater than 0, got {value}",
        ),
    ):
        get_settings()


def test_optional_values_accept_none_and_priority_may_be_negative():
    overrides = {"DEFAULT_TIMEOUT": None, "RESULT_TTL": 60, "DEFAULT_PRIORITY": -10}

    with override_settings(BGJOBS=overrides):
        conf = get_settings()

    assert (conf.DEFAULT_TIMEOUT, conf.RESULT_TTL, conf.DEFAULT_PRIORITY) == (
        None,
        60,
        -10,
    )


def test_unknown_backoff_name_is_refused():
    with (
        override_settings(BGJOBS={"DEFAULT_BACKOFF": "linear"}),
        pytest.raises(ImproperlyConfigured, match=r"DEFAULT_BACKOFF.*got 'linear'"),
    ):
        get_settings()


def test_bgjobs_must_be_a_dict():
    with (
        override_settings(BGJOBS=[("LEASE_SECONDS", 30)]),
        pytest.raises(ImproperlyConfigured, match=r"BGJOBS must be a dict, got list"),
    ):
        get_settings()


@pytest.mark.parametrize("value", [101, -101, 500])
def test_default_priority_out_of_range_is_refused(value):
    with (
        override_settings(BGJOBS={"DEFAULT_PRIORITY": value}),
        pytest.raises(
            ImproperlyConfigured, match=rf"DEFAULT_PRIORITY.*-100 to 100, got {value}"
        ),
    ):
        get_settings()


def test_default_queue_with_invalid_name_is_refused():
    with (
        override_settings(BGJOBS={"DEFAULT_QUEUE": "bad queue!"}),
        pytest.raises(ImproperlyConfigured, match=r"DEFAULT_QUEUE.*'bad queue!'"),
    ):
        get_settings()
