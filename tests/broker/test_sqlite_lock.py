"""The SQLite broker's per-process write lock (broker/sqlite.py)."""

import os
import threading

import pytest

from django_bgjobs.broker import sqlite


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_gets_a_free_write_lock():
    # The supervisor may hold the lock when it forks a worker process; the
    # child must not inherit a lock that no thread of its own will release.
    lock = sqlite._write_lock
    with lock:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0 if sqlite._write_lock.acquire(timeout=2) else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.django_db(transaction=True)
def test_a_write_inside_the_callers_transaction_does_not_wait_for_the_lock():
    from django.db import connection, transaction

    if connection.vendor != "sqlite":
        pytest.skip("the lock is SQLite's")
    broker = sqlite.SQLiteBroker("default")
    entered = []

    def write(outer: bool) -> None:
        if outer:
            with broker._writing():
                entered.append("outer")
            return
        with transaction.atomic(), broker._writing():
            entered.append("inner")

    # Another thread holds the lock. A caller's transaction already holds
    # SQLite's lock, so a write inside it goes on without this one; an
    # outermost write waits for it.
    with sqlite._write_lock:
        for outer in (False, True):
            thread = threading.Thread(target=write, args=(outer,), daemon=True)
            thread.start()
            thread.join(timeout=1)
        assert entered == ["inner"]
    thread.join(timeout=5)
    assert entered == ["inner", "outer"]
