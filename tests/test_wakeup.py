"""Wake-ups: PostgreSQL NOTIFY sent in the enqueue's transaction, and the
worker's listener that hears it, reconnects, and filters by queue."""

import contextlib
import json
import logging
import threading

import psycopg
import pytest
from django.db import connection, transaction

from django_bgjobs.broker.postgresql import CHANNEL
from django_bgjobs.models import Job
from django_bgjobs.status import JobStatus
from django_bgjobs.testing import database_url
from django_bgjobs.wakeup import Polling, get_listener
from tests import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def raw_listener():
    raw = psycopg.connect(database_url(), autocommit=True)
    raw.execute(f"LISTEN {CHANNEL}")
    return raw


def payloads_until(raw, last, timeout=10.0):
    seen = []
    for notify in raw.notifies(timeout=timeout):
        seen.append(notify.payload)
        if notify.payload == last:
            return seen
    raise AssertionError(f"no notification {last!r} within {timeout} s: {seen}")


@pytest.mark.postgresql
def test_enqueue_notifies_on_commit_only_and_once_per_queue_and_transaction():
    raw = raw_listener()
    try:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            jobs.noop.using(queue="rolled-back").enqueue()
            raise RuntimeError("roll back")
        assert not Job.objects.filter(queue="rolled-back").exists()
        # A delayed job is announced too: woken workers sleep until it is due.
        jobs.noop.using(queue="delayed", delay=60).enqueue()
        with transaction.atomic():
            jobs.noop.using(queue="a").enqueue_many([((), {})] * 3)
            jobs.noop.using(queue="a").enqueue()
        jobs.noop.using(queue="end").enqueue()
        assert payloads_until(raw, "end") == ["delayed", "a", "end"]
    finally:
        raw.close()


@pytest.mark.postgresql
def test_listener_wakes_for_its_queues_and_survives_a_lost_connection(
    wait_until, caplog
):
    woken = threading.Event()
    listener = get_listener(connection.alias, ["mine"], woken.set)
    assert listener.name == "LISTEN/NOTIFY"
    listener.start()
    try:
        wait_until(lambda: listener.connected, message="the listener to connect")
        wait_until(woken.is_set, message="the wake-up after connecting")
        woken.clear()
        jobs.noop.using(queue="other").enqueue()
        jobs.noop.using(queue="mine").enqueue()
        wait_until(woken.is_set, message="a wake-up for queue 'mine'")

        # Cut the listening connection from the server side.
        with caplog.at_level(logging.INFO, logger="django_bgjobs.worker"):
            pid = listener.wrapper.connection.info.backend_pid
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            wait_until(
                lambda: "LISTEN connection back" in caplog.text,
                message="the listener to reconnect",
            )
        assert "LISTEN connection lost" in caplog.text
        woken.clear()
        jobs.noop.using(queue="mine").enqueue()
        wait_until(woken.is_set, message="a wake-up after reconnecting")
    finally:
        listener.stop()
    assert not listener.thread.is_alive()


def test_without_postgresql_or_with_notify_off_workers_poll(settings):
    settings.BGJOBS = {**settings.BGJOBS, "LISTEN_NOTIFY": False}
    listener = get_listener(connection.alias, None, lambda: None)
    assert isinstance(listener, Polling)
    assert not listener.connected


@pytest.mark.slow
@pytest.mark.postgresql
def test_idle_worker_starts_new_and_delayed_jobs_without_waiting_for_its_poll(
    start_worker_with, wait_until
):
    # A 30 s poll: only a wake-up, or the delayed job's run time, starts a job.
    overrides = {"POLL_INTERVAL": 30, "WAKE_POLL_INTERVAL": 30}
    first = jobs.noop.enqueue()
    process = start_worker_with(BGJOBS_OVERRIDES=json.dumps(overrides))
    wait_until(
        lambda: first.refresh().status == JobStatus.SUCCEEDED,
        timeout=30,
        message="the worker's first claim",
    )
    wait_until(
        lambda: Job.objects.filter(status=JobStatus.RUNNING).count() == 0,
        message="an idle worker",
    )

    woken = jobs.noop.enqueue()
    delayed = jobs.noop.using(delay=2).enqueue()

    def done(handle):
        return lambda: handle.refresh().status == JobStatus.SUCCEEDED

    wait_until(done(woken), timeout=10, message="the notified job")
    wait_until(done(delayed), timeout=10, message="the delayed job")
    job = delayed.refresh().job
    assert job.started_at >= job.run_at, process.log_path.read_text()
    assert process.poll() is None
