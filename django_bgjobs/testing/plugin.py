"""The pytest plugin of django-bgjobs: fixtures for tests of your jobs.

Loaded in every pytest run where django-bgjobs is installed (the ``pytest11``
entry point ``bgjobs``; ``-p no:bgjobs`` turns it off). Importing it needs
neither Django settings nor pytest-django: each fixture imports what it uses
when a test asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .faults import Faults, Workers, database_url

if TYPE_CHECKING:
    from .assertions import EnqueuedJobs
    from .running import DrainResult


@pytest.fixture
def bgjobs_inline() -> Iterator[None]:
    """Run the jobs the test enqueues inline, as ``run_inline()`` does."""
    from .inline import run_inline

    with run_inline():
        yield


@pytest.fixture
def bgjobs_drain() -> Callable[..., DrainResult]:
    """Return ``drain``: run every ready job in the test's process."""
    from .running import drain

    return drain


@pytest.fixture
def bgjobs_enqueued() -> EnqueuedJobs:
    """Return an ``EnqueuedJobs`` over every job of the test database."""
    from .assertions import EnqueuedJobs

    return EnqueuedJobs()


@pytest.fixture
def bgjobs_workers(
    transactional_db: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Workers]]:
    """Return ``start(*flags, **env) -> Workers``; kill them at teardown.

    The environment gets ``DATABASE_URL`` of the test database and the
    pytest root on ``PYTHONPATH``, under whatever ``env`` passes.
    """
    started: list[Workers] = []
    root = str(request.config.rootpath)

    def start(*flags: str, **env: Any) -> Workers:
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        full = {"DATABASE_URL": database_url(), "PYTHONPATH": path}
        full.update({key: str(value) for key, value in env.items()})
        log_path = tmp_path / f"runworkers-{len(started)}.log"
        workers = Workers(*flags, log_path=log_path, env=full, cwd=root)
        started.append(workers)
        return workers

    yield start
    for workers in started:
        workers.close()


@pytest.fixture
def bgjobs_faults() -> Iterator[Faults]:
    """Return a ``Faults``; Redis it stopped starts again at teardown."""
    faults = Faults()
    try:
        yield faults
    finally:
        faults.undo()
