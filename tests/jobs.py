"""Module-level job handlers the tests enqueue (autodiscovered as tests.jobs)."""

import time

from django_bgjobs import Permanent, background

from .models import Execution


@background
def noop():
    return None


@background
def add(a, b):
    return a + b


@background(attempts=1)
def record_run(token, sleep=0.0):
    """Insert one Execution row; its unique token proves at-most-once."""
    if sleep:
        time.sleep(sleep)
    Execution.objects.create(token=token)
    return token


@background(attempts=3, backoff="exponential", backoff_delay=0.05, jitter=False)
def always_fails(message="boom"):
    raise RuntimeError(message)


@background(attempts=5, backoff="fixed", backoff_delay=0.01)
def fails_permanently():
    raise Permanent("card declined")


@background(attempts=5, backoff="fixed", backoff_delay=0.01, dont_retry_on=(KeyError,))
def raises_key_error():
    raise KeyError("missing")


@background(attempts=3, backoff="fixed", backoff_delay=0.01)
def fails_then_succeeds(token, failures):
    """Fail ``failures`` times (counted by Execution rows), then succeed."""
    count = Execution.objects.filter(token__startswith=f"{token}:").count()
    if count < failures:
        Execution.objects.create(token=f"{token}:{count}")
        raise RuntimeError(f"failure {count + 1}")
    return count


@background
def sleeper(seconds):
    time.sleep(seconds)
    return seconds


@background
def returns_set():
    return {1, 2}
