"""Retry policies are pure: attempts, backoff and jitter with ``now`` and
``rand`` passed in."""

import datetime as dt

import pytest

from django_bgjobs import Permanent
from django_bgjobs.retry import RetryPolicy, exponential, fixed, make_backoff

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def after(seconds):
    return NOW + dt.timedelta(seconds=seconds)


def test_fixed_backoff_waits_the_same_for_every_attempt():
    backoff = fixed(7.5)

    assert [backoff(n) for n in (1, 2, 10)] == [7.5, 7.5, 7.5]


def test_exponential_backoff_doubles_up_to_the_cap():
    backoff = exponential(2.0, 20.0)

    assert [backoff(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_make_backoff_returns_named_or_custom_functions():
    def custom(attempt):
        return attempt * 10

    assert make_backoff("fixed", 3.0, 100.0)(5) == 3.0
    assert make_backoff("exponential", 3.0, 100.0)(3) == 12.0
    assert make_backoff(custom, 3.0, 100.0) is custom


def test_make_backoff_refuses_unknown_names():
    with pytest.raises(
        ValueError, match=r"'fixed', 'exponential' or a callable.*'linear'"
    ):
        make_backoff("linear", 1.0, 1.0)


def test_next_run_at_follows_backoff_of_the_failed_attempt():
    policy = RetryPolicy(attempts=5, backoff=exponential(1.0, 3600.0))
    error = RuntimeError("boom")

    runs = [policy.next_run_at(charged=n, error=error, now=NOW) for n in (1, 2, 3)]

    assert runs == [after(1), after(2), after(4)]


def test_custom_callable_backoff_gets_the_attempt_number():
    seen = []

    def backoff(attempt):
        seen.append(attempt)
        return 60 * attempt

    policy = RetryPolicy(attempts=5, backoff=make_backoff(backoff, 1.0, 1.0))

    assert policy.next_run_at(charged=3, error=ValueError(), now=NOW) == after(180)
    assert seen == [3]


def test_negative_backoff_means_now():
    policy = RetryPolicy(attempts=2, backoff=lambda attempt: -5)

    assert policy.next_run_at(charged=1, error=ValueError(), now=NOW) == NOW


def test_no_retry_once_attempts_are_spent():
    policy = RetryPolicy(attempts=3, backoff=fixed(1.0))
    error = RuntimeError("boom")

    assert policy.next_run_at(charged=2, error=error, now=NOW) == after(1)
    assert policy.next_run_at(charged=3, error=error, now=NOW) is None


def test_max_attempts_of_the_job_overrides_the_policy():
    policy = RetryPolicy(attempts=3, backoff=fixed(1.0))
    error = RuntimeError("boom")

    assert policy.next_run_at(charged=3, error=error, now=NOW, max_attempts=5)
    assert policy.next_run_at(charged=1, error=error, now=NOW, max_attempts=1) is None


@pytest.mark.parametrize(("rand", "seconds"), [(0.0, 5.0), (0.5, 7.5), (1.0, 10.0)])
def test_jitter_spreads_the_wait_over_half_to_all_of_it(rand, seconds):
    policy = RetryPolicy(attempts=3, backoff=fixed(10.0), jitter=True)

    run_at = policy.next_run_at(
        charged=1, error=RuntimeError(), now=NOW, rand=lambda: rand
    )

    assert run_at == after(seconds)


def test_without_jitter_rand_is_not_used():
    def rand():
        raise AssertionError("rand called")

    policy = RetryPolicy(attempts=3, backoff=fixed(10.0), jitter=False)

    assert policy.next_run_at(charged=1, error=KeyError(), now=NOW, rand=rand) == after(
        10
    )


def test_permanent_error_is_never_retried():
    policy = RetryPolicy(attempts=10, backoff=fixed(1.0), retry_on=(Permanent,))

    assert policy.is_retryable(Permanent("card declined")) is False
    assert policy.next_run_at(charged=1, error=Permanent("x"), now=NOW) is None


def test_dont_retry_on_wins_over_retry_on():
    policy = RetryPolicy(
        attempts=10,
        backoff=fixed(1.0),
        retry_on=(LookupError,),
        dont_retry_on=(KeyError,),
    )

    assert policy.next_run_at(charged=1, error=KeyError("k"), now=NOW) is None
    assert policy.next_run_at(charged=1, error=IndexError(), now=NOW) == after(1)


def test_retry_on_limits_retries_to_the_listed_errors():
    policy = RetryPolicy(attempts=10, backoff=fixed(1.0), retry_on=(ConnectionError,))

    assert policy.next_run_at(charged=1, error=ConnectionResetError(), now=NOW)
    assert policy.next_run_at(charged=1, error=ValueError(), now=NOW) is None
