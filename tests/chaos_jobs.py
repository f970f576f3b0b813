"""Jobs of the chaos suite (tests/chaos).

They never fail on their own, and have attempts to spare: a job hit by
several kills or outages in a row still ends succeeded.
"""

import os
import random
import time

from django.db.models import F

from django_bgjobs import background

from .models import ChaosRun, Counter

#: Enough for every kill and outage a chaos run can throw at one job.
ATTEMPTS = 50


@background(attempts=ATTEMPTS, backoff="fixed", backoff_delay=0.01)
def chaos_run(key):
    """Sleep 0-20 ms, then insert a ChaosRun row: one row per run."""
    time.sleep(random.uniform(0, 0.02))
    ChaosRun.objects.create(key=key, pid=os.getpid())
    return key


@background(atomic=True, attempts=ATTEMPTS, backoff="fixed", backoff_delay=0.01)
def chaos_increment(key, counter="chaos"):
    """Sleep 0-20 ms, then add one to ``counter`` in the job's transaction.

    The sleep comes first: the row lock the UPDATE takes is held until the
    transaction commits, so a sleep after it would serialize the jobs.
    """
    time.sleep(random.uniform(0, 0.02))
    Counter.objects.filter(name=counter).update(value=F("value") + 1)
    return key


@background(attempts=5, backoff="fixed", backoff_delay=0.01)
def paused_run(key, seconds):
    """Sleep ``seconds`` on the first run only (marked by a ChaosRun row with
    ``key``); return the pid of the process that ran it."""
    if not ChaosRun.objects.filter(key=key).exists():
        ChaosRun.objects.create(key=key, pid=os.getpid())
        time.sleep(seconds)
    return os.getpid()
