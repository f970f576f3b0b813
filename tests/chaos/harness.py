"""What the chaos tests share: the kill loop and the figures they print."""

import collections
import threading
import time

from django.utils import timezone

from django_bgjobs.models import Attempt, Job
from django_bgjobs.status import JobStatus
from django_bgjobs.testing import database_answers


def unfinished():
    """Return the number of jobs not yet succeeded."""
    return Job.objects.exclude(status=JobStatus.SUCCEEDED).count()


def kill_until_done(workers, every=2.0, timeout=150.0):
    """Kill a random worker process with SIGKILL every ``every`` seconds
    until every job succeeded; return the pids killed."""
    kills = []
    deadline = time.monotonic() + timeout
    next_kill = time.monotonic() + every
    while unfinished():
        assert workers.alive(), workers.log()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{unfinished()} jobs unfinished after {timeout} s; "
                f"log tail:\n{workers.log()[-3000:]}"
            )
        if time.monotonic() >= next_kill:
            # Right after a kill the replacement may not be forked yet.
            if workers.children():
                kills.append(workers.kill_child())
            next_kill += every
        time.sleep(0.1)
    return kills


def status_counts():
    return collections.Counter(Job.objects.values_list("status", flat=True))


def outcome_counts():
    return collections.Counter(Attempt.objects.values_list("outcome", flat=True))


def wait_for(workers, predicate, timeout, message):
    """Poll ``predicate`` until truthy; fail after ``timeout`` seconds with
    the job counts and the tail of the workers' log."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {message}; jobs: "
                f"{dict(status_counts())}; log tail:\n{workers.log()[-3000:]}"
            )
        time.sleep(0.02)
    return value


class OutageWatch(threading.Thread):
    """Poll the database every 10 ms, and note when it stopped answering and
    when it answered again (``down``/``up`` on the monotonic clock,
    ``up_at`` on the wall clock)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.down = self.up = self.up_at = None
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.01):
            answers = database_answers()
            if not answers and self.down is None:
                self.down = time.monotonic()
            elif answers and self.down is not None and self.up is None:
                self.up, self.up_at = time.monotonic(), timezone.now()

    def stop(self):
        self.done.set()
        self.join()
        assert self.down is not None, "the database never stopped answering"
        assert self.up is not None, "the database never answered again"
        return self.up - self.down
