"""Circuit breakers: the shared state machine on a real database, with a
clock the tests move, and a job that snoozes while its circuit is open."""

import datetime as dt
import json

import pytest

from django_bgjobs import CircuitOpen, Snooze
from django_bgjobs.circuit import CircuitBreaker
from django_bgjobs.models import Attempt, Circuit, DeadLetter, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from tests import jobs
from tests.models import Execution

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


def breaker(clock, **options):
    options = {"failures": 3, "window": 60, "cooldown": 30, **options}
    return CircuitBreaker("api", now=clock, **options)


def fail(circuit, error=None):
    error = error or ConnectionError("down")
    with pytest.raises(type(error)), circuit:
        raise error


def test_opens_after_the_threshold_within_the_window(clock):
    circuit = breaker(clock)
    for _ in range(2):
        fail(circuit)
        clock.advance(10)
    assert circuit.state() == "closed"
    fail(circuit)
    assert circuit.state() == "open"
    with pytest.raises(CircuitOpen) as refused:
        circuit.allow()
    assert refused.value.seconds == pytest.approx(30)
    assert "circuit api is open" in str(refused.value)
    row = Circuit.objects.get(name="api")
    assert row.last_error == "ConnectionError: down"


def test_failures_older_than_the_window_start_over(clock):
    circuit = breaker(clock)
    fail(circuit)
    fail(circuit)
    clock.advance(61)
    fail(circuit)
    assert circuit.state() == "closed"
    assert Circuit.objects.get(name="api").failures == 1


def test_one_probe_after_the_cooldown_closes_it_on_success(clock):
    circuit = breaker(clock, failures=1)
    fail(circuit)
    clock.advance(29)
    with pytest.raises(CircuitOpen) as refused:
        circuit.allow()
    assert refused.value.seconds == pytest.approx(1)
    clock.advance(1)
    circuit.allow()  # this caller probes
    assert circuit.state() == "half_open"
    other = breaker(clock, failures=1)
    with pytest.raises(CircuitOpen):
        other.allow()  # only one probe at a time
    circuit.succeeded()
    assert circuit.state() == "closed"
    with circuit:
        pass


def test_a_failed_probe_opens_it_again(clock):
    circuit = breaker(clock, failures=1)
    fail(circuit)
    clock.advance(30)
    fail(circuit)  # the probe call fails
    assert circuit.state() == "open"
    assert Circuit.objects.get(name="api").opened_at == clock.now


def test_a_probe_that_never_reports_is_replaced_after_the_cooldown(clock):
    circuit = breaker(clock, failures=1)
    fail(circuit)
    clock.advance(30)
    circuit.allow()  # the probe's worker dies: no verdict
    clock.advance(30)
    circuit.allow()  # the next caller probes instead
    circuit.succeeded()
    assert circuit.state() == "closed"


def test_only_the_listed_exceptions_count(clock):
    circuit = breaker(clock, failures=1, exceptions=(ConnectionError,))
    fail(circuit, KeyError("not the dependency's fault"))
    assert circuit.state() == "closed"
    fail(circuit, ConnectionError("down"))
    assert circuit.state() == "open"


def test_call_passes_arguments_and_bad_options_are_refused(clock):
    assert breaker(clock).call(divmod, 7, 2) == (3, 1)
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker("api", failures=0)
    with pytest.raises(ValueError, match="1-100 characters"):
        CircuitBreaker("")
    with pytest.raises(ValueError, match="seconds >= 0"):
        Snooze(-1)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_jobs_snooze_while_the_circuit_is_open_and_run_once_it_closes(
    start_worker_with, wait_until
):
    # Down: two failures open the circuit (cool-down 1 s).
    down = [jobs.calls_payments.enqueue(f"down-{i}") for i in range(2)]
    worker = start_worker_with(
        "--concurrency", "1", BGJOBS_OVERRIDES=json.dumps({"POLL_INTERVAL": 0.05})
    )
    wait_until(
        lambda: all(h.refresh().status == JobStatus.FAILED for h in down),
        timeout=30,
        message="the calls made while the payments API is down to fail",
    )
    assert Circuit.objects.get(name="tests-payments").state == "open"
    later = [jobs.calls_payments.enqueue(f"later-{i}") for i in range(3)]
    wait_until(
        lambda: Attempt.objects.filter(outcome=AttemptOutcome.SNOOZED).exists(),
        message="a job to snooze on the open circuit",
    )
    Execution.objects.create(token=jobs.PAYMENTS_UP)

    wait_until(
        lambda: all(h.refresh().status == JobStatus.SUCCEEDED for h in later),
        timeout=20,
        message="the jobs to run once the probe closed the circuit",
    )
    assert Circuit.objects.get(name="tests-payments").state == "closed"
    assert DeadLetter.objects.count() == 2  # only the calls made while down
    for handle in later:
        job = Job.objects.get(id=handle.id)
        outcomes = list(job.attempts.values_list("outcome", flat=True))
        assert outcomes[-1] == AttemptOutcome.SUCCEEDED
        assert set(outcomes[:-1]) <= {AttemptOutcome.SNOOZED}
        assert job.charged_attempts == 1, "snoozes are not charged"
    assert worker.poll() is None
