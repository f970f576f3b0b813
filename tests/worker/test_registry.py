"""The worker registry and the maintenance lease.

Each worker process registers a row, touches it every heartbeat and closes it
on a clean stop; maintenance (reap, prune, lost workers) runs only in the
holder of one lease, taken with a conditional UPDATE.
"""

import datetime as dt
import os
import signal
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_bgjobs.broker import get_broker
from django_bgjobs.models import Job, Lease, Worker, WorkerStatus
from django_bgjobs.services import queries
from django_bgjobs.status import AttemptOutcome, JobStatus
from django_bgjobs.worker.maintenance import MAINTENANCE_LEASE, Maintenance
from django_bgjobs.worker.process import ProcessOptions, WorkerProcess
from tests import jobs

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
# A worker subprocess needs a second or two to import Django on a busy box.
START_TIMEOUT = 30


def make_worker(worker_id, heartbeat_age=0.0, stopped=False, lost=False):
    now = timezone.now()
    return Worker.objects.create(
        id=worker_id,
        host="h1",
        pid=100,
        queues=["default"],
        concurrency=4,
        started_at=now - dt.timedelta(hours=1),
        last_heartbeat_at=now - dt.timedelta(seconds=heartbeat_age),
        stopped_at=now if stopped else None,
        lost_at=now if lost else None,
    )


def status_of(worker_id):
    return queries.workers().get(id=worker_id).status


# -- registry through a real WorkerProcess --


@pytest.mark.django_db(transaction=True)
def test_worker_process_registers_beats_and_deregisters(settings, wait_until):
    settings.BGJOBS = {"HEARTBEAT_SECONDS": 0.05, "LEASE_SECONDS": 10}
    process = WorkerProcess(ProcessOptions(queues=["q1", "q2"], concurrency=3))
    thread = threading.Thread(target=process.run)
    thread.start()
    try:
        row = wait_until(
            lambda: Worker.objects.filter(id=process.worker_id).first(),
            message="the registry row",
        )
        assert (row.host, row.pid, row.queues, row.concurrency) == (
            process.worker_id.split(":")[0],
            os.getpid(),
            ["q1", "q2"],
            3,
        )
        assert row.stopped_at is None
        assert status_of(row.id) == WorkerStatus.RUNNING
        wait_until(
            lambda: (
                Worker.objects.get(id=row.id).last_heartbeat_at > row.last_heartbeat_at
            ),
            message="a heartbeat",
        )
    finally:
        process.stop()
        thread.join(10)

    assert not thread.is_alive()
    row = Worker.objects.get(id=process.worker_id)
    assert row.stopped_at is not None
    assert status_of(row.id) == WorkerStatus.STOPPED
    lease = Lease.objects.filter(name=MAINTENANCE_LEASE, holder=row.id).first()
    assert lease is None or lease.expires_at < timezone.now()


@pytest.mark.django_db(transaction=True)
def test_stopped_worker_leaves_no_running_job_before_it_deregisters():
    handles = jobs.add.enqueue_many([((i, 1), {}) for i in range(3)])

    assert WorkerProcess(ProcessOptions(burst=True, concurrency=2)).run() == 0

    (row,) = Worker.objects.all()
    assert row.stopped_at is not None
    rows = Job.objects.filter(id__in=[h.id for h in handles])
    assert set(rows.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    assert not Job.objects.filter(worker=row.id, status=JobStatus.RUNNING).exists()


@pytest.mark.django_db
def test_touch_clears_lost_and_a_stopped_row_is_not_touched():
    broker = get_broker()
    now = timezone.now()
    broker.register_worker("h:1:a", "h", 1, None, 2, now - dt.timedelta(minutes=5))

    assert broker.mark_lost_workers(now, 30) == 1
    assert status_of("h:1:a") == WorkerStatus.LOST
    assert broker.touch_worker("h:1:a", now) == 1
    assert status_of("h:1:a") == WorkerStatus.RUNNING
    assert Worker.objects.get(id="h:1:a").lost_at is None

    assert broker.deregister_worker("h:1:a", now) == 1
    assert broker.touch_worker("h:1:a", now) == 0
    assert broker.mark_lost_workers(now + dt.timedelta(hours=1), 30) == 0
    assert status_of("h:1:a") == WorkerStatus.STOPPED


# -- the maintenance lease --


@pytest.mark.django_db
def test_lease_is_renewed_by_its_holder_and_taken_over_after_expiry():
    broker = get_broker()

    def at(seconds):
        return T0 + dt.timedelta(seconds=seconds)

    assert broker.acquire_lease("m", "a", at(0), 30)
    assert not broker.acquire_lease("m", "b", at(10), 30)
    assert broker.acquire_lease("m", "a", at(20), 30)  # now until 50
    assert not broker.acquire_lease("m", "b", at(40), 30)
    assert broker.acquire_lease("m", "b", at(51), 30)
    assert not broker.acquire_lease("m", "a", at(52), 30)
    assert Lease.objects.get(name="m").holder == "b"

    assert broker.release_lease("m", "a", at(53)) == 0
    assert broker.release_lease("m", "b", at(53)) == 1
    assert broker.acquire_lease("m", "a", at(53), 30)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("existing", [False, True], ids=["insert", "expired-row"])
def test_only_one_of_two_threads_holds_the_lease(existing):
    if existing:
        Lease.objects.create(name="m", holder="old", expires_at=T0)
    now = timezone.now()
    barrier = threading.Barrier(2)
    results, errors = [None, None], []

    def compete(index):
        try:
            barrier.wait(10)
            results[index] = get_broker().acquire_lease("m", f"t{index}", now, 30)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=compete, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(results) == [False, True]
    winner = f"t{results.index(True)}"
    assert Lease.objects.get(name="m").holder == winner


@pytest.mark.django_db
def test_only_the_lease_holder_reaps_and_marks_lost_workers():
    handle = jobs.add.enqueue(1, 1)
    broker = get_broker()
    now = timezone.now()
    make_worker("ghost:1:dead", heartbeat_age=120)
    broker.claim(None, 1, "ghost:1:dead", now, 30)
    Job.objects.filter(id=handle.id).update(
        lease_expires_at=now - dt.timedelta(seconds=1)
    )
    Lease.objects.create(
        name=MAINTENANCE_LEASE,
        holder="other",
        expires_at=now + dt.timedelta(seconds=60),
    )
    maintenance = Maintenance("me:2:live", broker.using)

    maintenance._beat(broker, 1)

    assert Job.objects.get(id=handle.id).status == JobStatus.RUNNING
    assert Worker.objects.get(id="ghost:1:dead").lost_at is None

    Lease.objects.filter(name=MAINTENANCE_LEASE).update(
        expires_at=now - dt.timedelta(seconds=1)
    )
    maintenance._beat(broker, 1)

    job = Job.objects.get(id=handle.id)
    assert (job.status, job.attempt) == (JobStatus.READY, 1)
    assert job.attempts.get().outcome == AttemptOutcome.LOST
    assert Worker.objects.get(id="ghost:1:dead").lost_at is not None
    assert Lease.objects.get(name=MAINTENANCE_LEASE).holder == "me:2:live"
    # The beat registered the maintenance's own worker, which had no row.
    assert status_of("me:2:live") == WorkerStatus.RUNNING


# -- admin page --


@pytest.fixture
def admin_user(django_user_model):
    """The superuser behind ``admin_client``, without a (slow) password."""
    user = django_user_model(username="admin", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    return user


def fill_workers(prefix, count):
    now = timezone.now()
    for i in range(count):
        make_worker(f"{prefix}-run-{i}:1:a")
        make_worker(f"{prefix}-stop-{i}:1:a", stopped=True)
        make_worker(f"{prefix}-lost-{i}:1:a", heartbeat_age=600)
        for _ in range(2):
            Job.objects.create(
                task="tests.jobs.noop",
                status=JobStatus.RUNNING,
                worker=f"{prefix}-run-{i}:1:a",
                started_at=now,
                attempt=1,
            )


CHANGELIST = "admin:django_bgjobs_worker_changelist"


@pytest.mark.django_db
def test_admin_lists_running_stopped_and_lost_workers(admin_client):
    fill_workers("w", 1)
    make_worker("marked:1:a", lost=True)
    Job.objects.create(task="tests.jobs.noop", status=JobStatus.SUCCEEDED, worker="w")

    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    rows = {
        w.id: (w.status, w.running_jobs) for w in response.context["cl"].result_list
    }
    assert rows == {
        "w-run-0:1:a": ("running", 2),
        "w-stop-0:1:a": ("stopped", 0),
        "w-lost-0:1:a": ("lost", 0),
        "marked:1:a": ("lost", 0),
    }
    content = response.content.decode()
    for label in ("Running", "Stopped", "Lost"):
        assert f">{label}</span>" in content


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["running", "stopped", "lost"])
def test_admin_filters_workers_by_status(admin_client, status):
    fill_workers("w", 2)

    response = admin_client.get(reverse(CHANGELIST), {"status": status})

    ids = sorted(w.id for w in response.context["cl"].result_list)
    short = {"running": "run", "stopped": "stop", "lost": "lost"}[status]
    assert ids == [f"w-{short}-{i}:1:a" for i in range(2)]


@pytest.mark.django_db
def test_admin_worker_pages_cost_the_same_queries_whatever_the_rows(admin_client):
    def count():
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(reverse(CHANGELIST))
        assert response.status_code == 200
        return len(captured)

    fill_workers("a", 1)
    few = count()
    fill_workers("b", 6)
    assert count() == few

    detail = reverse("admin:django_bgjobs_worker_change", args=["b-run-0:1:a"])
    response = admin_client.get(detail)
    assert response.status_code == 200
    assert "Running" in response.content.decode()
    assert admin_client.post(detail).status_code == 405


# -- real runworkers --


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_runworkers_registers_each_process_and_deregisters_on_sigterm(
    start_worker_with, wait_until
):
    process = start_worker_with("--processes", "2", "--concurrency", "1")

    def running():
        rows = queries.workers().filter(status=WorkerStatus.RUNNING)
        return rows.count() == 2

    wait_until(running, timeout=START_TIMEOUT, message="two running workers")
    pids = set(Worker.objects.values_list("pid", flat=True))
    assert len(pids) == 2
    assert process.pid not in pids

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, process.log_path.read_text()

    statuses = list(queries.workers().values_list("status", flat=True))
    assert statuses == [WorkerStatus.STOPPED] * 2
