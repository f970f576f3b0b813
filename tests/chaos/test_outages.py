"""Acceptance 4 of issue 3: PostgreSQL restarted in the middle of a 2,000-job
run. Every job succeeds, and neither the supervisor nor any of its worker
processes exits: the processes wait the outage out and reconnect.

One restart, not two: the restart command returns about 2 s after the server
is back (the outage itself lasts a fraction of a second), and by then most
of the run is done.
"""

import collections
import re
import time

import pytest
from django.db.models import Min

from django_bgjobs.models import Attempt, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import chaos_jobs

from .harness import OutageWatch, outcome_counts, status_counts, wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True),
]

JOBS = 2000
#: What the worker processes log about the outage, one entry each.
OUTAGE_LOG = re.compile(
    r"^(database unavailable while \w+|database available again"
    r"|LISTEN connection (?:lost|back)|heartbeat failed|could not (?:record|register)"
    r"|worker process crashed|Exception in thread)",
    re.MULTILINE,
)


def succeeded():
    return Job.objects.filter(status=JobStatus.SUCCEEDED).count()


def test_postgresql_restart_mid_run_loses_no_job_and_stops_no_process(
    chaos_workers, restart_postgresql
):
    chaos_jobs.chaos_run.enqueue_many([((i,), {}) for i in range(JOBS)])
    started = time.monotonic()
    workers = chaos_workers("--processes", "2", "--concurrency", "4")
    children = workers.wait_for_children(2)
    wait_for(workers, lambda: succeeded() >= JOBS // 4, 60, f"{JOBS // 4} jobs")

    watch = OutageWatch()
    watch.start()
    command = restart_postgresql()
    outage = watch.stop()
    left = JOBS - succeeded()
    after = Attempt.objects.filter(
        outcome=AttemptOutcome.SUCCEEDED, finished_at__gt=watch.up_at
    )
    wait_for(workers, after.exists, 30, "a job to succeed after the restart")
    first = after.aggregate(first=Min("finished_at"))["first"]
    recovery = (first - watch.up_at).total_seconds()
    wait_for(workers, lambda: succeeded() == JOBS, 120, "every job to succeed")
    elapsed = time.monotonic() - started

    assert status_counts() == {JobStatus.SUCCEEDED: JOBS}
    assert workers.alive(), workers.log()[-3000:]
    assert sorted(workers.children()) == sorted(children), "a worker process exited"
    log = workers.log()
    entries = collections.Counter(m.group(1) for m in OUTAGE_LOG.finditer(log))
    print(
        f"\npostgresql restart: jobs={JOBS} outage={outage:.2f}s "
        f"restart_command={command:.2f}s first_success_after={recovery:.2f}s "
        f"left_after_restart={left} elapsed={elapsed:.1f}s "
        f"attempts={dict(outcome_counts())}\n"
        f"log: lines={log.count(chr(10))} entries={dict(entries)}"
    )
    assert workers.stop() == 0, log[-3000:]
