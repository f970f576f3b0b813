"""Shared fixtures: real databases, real worker subprocesses, deadline polls.

Under ``CI=true`` a missing PostgreSQL or Redis fails the run instead of
skipping the tests that need it.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from django_bgjobs.testing import database_url

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionstart(session):
    if IN_CI:
        _require_redis()


def _redis_error():
    """Return why Redis at REDIS_URL does not answer, or None if it does."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        return f"Redis at {url} is unreachable: {error}"
    return None


def _require_redis():
    if (error := _redis_error()) is not None:
        pytest.exit(f"CI=true but {error}", returncode=3)


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    vendor = "postgresql" if "postgresql" in engine else "sqlite"
    no_redis = None
    if not IN_CI and any("redis" in item.keywords for item in items):
        no_redis = _redis_error()
    for item in items:
        if "postgresql" in item.keywords and vendor != "postgresql":
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL)"))
        if "redis" in item.keywords and no_redis:
            item.add_marker(pytest.mark.skip(reason=no_redis))


@pytest.fixture
def vendor():
    return connection.vendor


def _wait_until(predicate, timeout=10.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def wait_until():
    """Poll ``predicate`` until truthy; fail after ``timeout`` seconds."""
    return _wait_until


def worker_env(**extra):
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def worker_command(*flags):
    return [sys.executable, "-m", "django", "runworkers", *flags]


@pytest.fixture
def run_worker_with(transactional_db):
    """Run ``runworkers --burst`` with ``flags`` and environment ``env``."""

    def run(*flags, timeout=120, **env):
        return subprocess.run(
            worker_command("--burst", *flags),
            env=worker_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    return run


@pytest.fixture
def start_worker_with(transactional_db, tmp_path):
    """Start ``runworkers`` with extra environment ``env``; killed at teardown.

    Output goes to a file (``process.log_path``), not a pipe, so a chatty
    worker never blocks on a full pipe nobody reads.
    """
    started = []

    def start(*flags, **env):
        log_path = tmp_path / f"runworkers-{len(started)}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                worker_command(*flags),
                env=worker_env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
                start_new_session=True,
            )
        process.log_path = log_path
        started.append(process)
        return process

    yield start
    for process in started:
        # The whole group: worker processes may outlive their supervisor.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def run_worker(run_worker_with):
    """Run ``runworkers --burst`` with ``flags``; return the process."""
    return run_worker_with


@pytest.fixture
def enqueued():
    """Collect ``(task, job_id, queue)`` of every ``job_enqueued`` signal."""
    from django_bgjobs.signals import job_enqueued

    sent = []

    def receiver(sender, job_id, queue, **kwargs):
        sent.append((sender, job_id, queue))

    job_enqueued.connect(receiver)
    yield sent
    job_enqueued.disconnect(receiver)
