"""Module-level job handlers the tests enqueue (autodiscovered)."""

import os
import signal
import sys
import threading
import time

from django_bgjobs import Permanent, background, current_job
from django_bgjobs.circuit import CircuitBreaker

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


@background(key=lambda name: f"keyed:{name}")
def keyed_echo(name):
    """Keyed by its argument: one unfinished job per name."""
    return name


@background(attempts=3, backoff=lambda attempt: 0, jitter=False)
def retries_at_once():
    raise RuntimeError("again")


@background(attempts=4, backoff="fixed", backoff_delay=7, retry_on=(ValueError,))
def retries_value_errors_only():
    raise ValueError("retry me")


@background
def slow_first_run(token, seconds):
    """Sleep ``seconds`` on the first run only; an Execution row marks it."""
    _, first = Execution.objects.get_or_create(token=token)
    if first:
        time.sleep(seconds)
    return token


@background(attempts=3)
def exits():
    """Call sys.exit() from job code, which must not kill the worker."""
    sys.exit(3)


@background(timeout=1, attempts=2, backoff="fixed", backoff_delay=0.01)
def hangs_first_run(token, seconds=30):
    """Sleep past the 1 s timeout on the first run only (an Execution row
    marks it); the retry returns at once."""
    _, first = Execution.objects.get_or_create(token=token)
    if first:
        time.sleep(seconds)
    return token


HOARD = []


@background
def hoards_memory(megabytes):
    """Keep ``megabytes`` MiB of touched memory alive in this process."""
    HOARD.append(bytearray(b"\x01") * (megabytes * 2**20))
    return megabytes


@background(timeout=1, attempts=2, backoff="fixed", backoff_delay=0.01)
def freezes_first_run(token):
    """On the first run, stop the whole worker process (SIGSTOP) after 0.5 s,
    as a job stuck in C code holding the GIL would; the retry returns."""
    _, first = Execution.objects.get_or_create(token=token)
    if first:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGSTOP)
    return token


@background(atomic=True, attempts=1)
def atomic_insert(token, fail=False, lose_fence=False):
    """Write a row in the job's transaction; maybe fail, or lose the fence."""
    Execution.objects.create(token=token)
    if lose_fence:
        # Another worker reclaims the job meanwhile (its attempt moves on).
        def reclaim():
            from django.db import connection
            from django.db.models import F

            from django_bgjobs.models import Job

            Job.objects.filter(args__0=token).update(attempt=F("attempt") + 1)
            connection.close()

        thread = threading.Thread(target=reclaim)
        thread.start()
        thread.join()
    if fail:
        raise RuntimeError("after the write")
    return token


@background(attempts=3, backoff="fixed", backoff_delay=0.01)
def waits_for_cancel(seconds=30):
    """Wait up to ``seconds`` for an operator's cancel, then stop with
    ``JobCancelled``; return ``"not cancelled"`` if none came."""
    job = current_job()
    if job.wait_cancelled(seconds):
        job.raise_if_cancelled()
    return "not cancelled"


@background(timeout=2, attempts=3, backoff="fixed", backoff_delay=0.01)
def ignores_cancel(seconds=30):
    """Never checks for a cancel: only its timeout stops it."""
    time.sleep(seconds)
    return seconds


@background(attempts=3, backoff="fixed", backoff_delay=0.01)
def fails_once_cancelled(seconds=30):
    """Notice a cancel, then fail with an ordinary error."""
    if current_job().wait_cancelled(seconds):
        raise RuntimeError("stopped halfway")
    return "not cancelled"


@background
def describes_itself():
    """Return what ``current_job()`` says about this run."""
    job = current_job()
    return [job.id, job.task, job.queue, job.attempt, job.is_cancelled()]


PAYMENTS = CircuitBreaker("tests-payments", failures=2, window=60, cooldown=1)
#: The Execution token that marks the payments API as up.
PAYMENTS_UP = "payments-up"


@background(attempts=1)
def calls_payments(token):
    """Call a payments API through a circuit breaker; the API is up once an
    Execution row "payments-up" exists."""
    with PAYMENTS:
        if not Execution.objects.filter(token=PAYMENTS_UP).exists():
            raise ConnectionError("payments API down")
    Execution.objects.create(token=token)
    return token


# The chaos suite's jobs live in their own module; importing it here registers
# them wherever this module is autodiscovered.
from . import chaos_jobs  # noqa: E402, F401


@background(limit_key=lambda customer_id, seconds=0.0: f"customer:{customer_id}")
def keyed_by_customer(customer_id, seconds=0.0):
    """Counted by the per-key limits of its queue under its customer."""
    time.sleep(seconds)
    return customer_id


@background(remove_on_complete=2, remove_on_fail={"age": 3600})
def kept_two(n):
    """Only its 2 newest successes are kept; failures for an hour."""
    return n


@background(remove_on_complete=True)
def removed_at_once(n):
    return n


@background(limit_key=lambda *args, **kwargs: f"customer:{args[0]}")
def keyed_anything(*args, **kwargs):
    """Takes any JSON; counted under ``customer:<first argument>``."""
    return None


@background
def enqueues_add(a, b):
    """Enqueue ``add(a, b)``: a job that makes another; return its id."""
    return add.enqueue(a, b).id


@background
def enqueues_itself(n):
    """Enqueue itself with ``n + 1``: work that never ends."""
    enqueues_itself.enqueue(n + 1)
    return n


@background
def snoozes(seconds):
    """Ask to run again after ``seconds``, every time."""
    from django_bgjobs import Snooze

    raise Snooze(seconds)
