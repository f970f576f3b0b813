"""Module-level job handlers the tests enqueue (autodiscovered)."""

import asyncio
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


# -- coroutine jobs (run on the worker's event loop) --------------------------


@background
async def async_sleep(seconds, value=None):
    await asyncio.sleep(seconds)
    return value


@background(attempts=3, backoff="fixed", backoff_delay=0.01)
async def async_fails_then_succeeds(token, failures):
    """As ``fails_then_succeeds``, through the async ORM."""
    count = await Execution.objects.filter(token__startswith=f"{token}:").acount()
    if count < failures:
        await Execution.objects.acreate(token=f"{token}:{count}")
        raise RuntimeError(f"failure {count + 1}")
    return count


@background(attempts=2, backoff="fixed", backoff_delay=0.01, timeout=0.5)
async def async_overruns(seconds=30):
    """Awaits past its timeout: the event loop cancels it."""
    await asyncio.sleep(seconds)
    return "finished"


@background(attempts=3, backoff="fixed", backoff_delay=0.01)
async def async_waits_for_cancel(seconds=30):
    """Awaits until an operator's cancel cancels its asyncio task."""
    await asyncio.sleep(seconds)
    return "not cancelled"


@background(attempts=1)
async def async_current_job():
    """Return what ``current_job()`` says inside a coroutine job."""
    await asyncio.sleep(0)
    job = current_job()
    return {"id": job.id, "attempt": job.attempt, "task": job.task}


@background(attempts=1)
async def async_progress(steps, pause=0.0):
    """Report ``steps`` progress values, awaiting ``pause`` between them."""
    for step in range(1, steps + 1):
        current_job().set_progress({"done": step, "total": steps})
        await asyncio.sleep(pause)
    return steps


@background(attempts=1)
def progress_loop(steps, last=100):
    """Report progress ``steps`` times in a tight loop, ending at ``last``."""
    job = current_job()
    for step in range(steps):
        job.set_progress(step * 100 / steps)
    job.set_progress(last)
    return steps


@background(attempts=1)
def progress_then_wait(values, seconds):
    """Report each of ``values`` at once, then keep running for ``seconds``."""
    for value in values:
        current_job().set_progress(value)
    time.sleep(seconds)
    return values[-1]


@background(attempts=1)
def returns_coroutine(value):
    """A plain function that returns a coroutine (as a wrapper may)."""
    return async_sleep.func(0, value)


@background(attempts=1)
async def async_raises_timeout():
    raise TimeoutError("the upstream API timed out")


@background(attempts=1, timeout=0.3)
async def async_blocks_loop(seconds):
    """Blocks the event loop (a bug): only the hard timeout can stop it."""
    time.sleep(seconds)
    return "unblocked"


@background(atomic=True, attempts=1)
def atomic_progress(steps):
    """Report progress in a tight loop inside the job's transaction."""
    for step in range(1, steps + 1):
        current_job().set_progress({"step": step})
    return steps


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
