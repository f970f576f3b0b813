"""Acceptance 1 and 2 of issue 3: a random worker process killed with
``kill -9`` every 2 s while thousands of jobs run.

Every run cut off by a kill is recorded once as an attempt of outcome
``lost``: the supervisor records the running jobs of a child that died as
lost as soon as ``waitpid`` reports it (``maintenance.recover``), and the
reaper does when their lease expires if the supervisor could not. Both
records are fenced by the attempt number. So the lost attempts count exactly
the runs in flight at the kills, and the extra runs of all the jobs together
(runs beyond each job's one success) cannot exceed it.
"""

import collections
import time

import pytest

from django_bgjobs.models import Attempt
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import chaos_jobs
from tests.models import ChaosRun, Counter

from .harness import kill_until_done, outcome_counts, status_counts

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True),
]

JOBS = 5000
FLAGS = ("--processes", "2", "--concurrency", "4")


def run_under_kills(chaos_workers):
    """Start the workers, kill a child every 2 s until every job succeeded;
    return the workers, the kills and the seconds it took."""
    started = time.monotonic()
    workers = chaos_workers(*FLAGS)
    workers.wait_for_children(2)
    kills = kill_until_done(workers)
    elapsed = time.monotonic() - started
    return workers, kills, elapsed


def cut_off_runs(outcomes):
    """Return the number of runs cut off by the kills: attempts of outcome
    ``lost``. The jobs never fail on their own, so no other outcome but
    ``succeeded`` is expected."""
    assert set(outcomes) <= {AttemptOutcome.SUCCEEDED, AttemptOutcome.LOST}, outcomes
    return outcomes[AttemptOutcome.LOST]


def test_jobs_survive_kill_9_every_2_s_and_duplicates_stay_within_in_flight(
    chaos_workers,
):
    handles = chaos_jobs.chaos_run.enqueue_many([((i,), {}) for i in range(JOBS)])

    workers, kills, elapsed = run_under_kills(chaos_workers)

    assert status_counts() == {JobStatus.SUCCEEDED: JOBS}
    runs = collections.Counter(ChaosRun.objects.values_list("key", flat=True))
    assert set(runs) == set(range(JOBS)), "a job succeeded without running"
    duplicates = sum(count - 1 for count in runs.values())
    outcomes = outcome_counts()
    in_flight = cut_off_runs(outcomes)
    assert outcomes[AttemptOutcome.SUCCEEDED] == JOBS
    succeeded = Attempt.objects.filter(outcome=AttemptOutcome.SUCCEEDED)
    assert sorted(succeeded.values_list("job_id", flat=True)) == sorted(
        h.id for h in handles
    )
    print(
        f"\nchaos kill -9: jobs={JOBS} kills={len(kills)} in_flight={in_flight} "
        f"duplicates={duplicates} elapsed={elapsed:.1f}s "
        f"jobs_per_s={JOBS / elapsed:.0f}"
    )
    assert len(kills) >= 2, "the run ended before the kills could matter"
    assert duplicates <= in_flight
    assert workers.stop() == 0, workers.log()[-3000:]


def test_atomic_jobs_under_kill_9_every_2_s_count_exactly_once(chaos_workers):
    Counter.objects.create(name="chaos")
    chaos_jobs.chaos_increment.enqueue_many([((i,), {}) for i in range(JOBS)])

    workers, kills, elapsed = run_under_kills(chaos_workers)

    assert status_counts() == {JobStatus.SUCCEEDED: JOBS}
    outcomes = outcome_counts()
    in_flight = cut_off_runs(outcomes)
    assert outcomes[AttemptOutcome.SUCCEEDED] == JOBS
    value = Counter.objects.get(name="chaos").value
    print(
        f"\nchaos kill -9, atomic: jobs={JOBS} counter={value} kills={len(kills)} "
        f"in_flight={in_flight} elapsed={elapsed:.1f}s "
        f"jobs_per_s={JOBS / elapsed:.0f}"
    )
    assert len(kills) >= 2, "the run ended before the kills could matter"
    assert value == JOBS
    assert workers.stop() == 0, workers.log()[-3000:]
