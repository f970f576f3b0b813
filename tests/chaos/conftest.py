"""Fixtures of the chaos suite: worker subprocesses with short leases, and a
PostgreSQL restart that leaves a trace for anyone sharing the server.

Chaos tests restart PostgreSQL and stop Redis, which breaks any test running
beside them. They run alone, with ``pytest -m chaos -p no:xdist``, and skip
themselves in a pytest-xdist run and in any run that does not select them.
``bgjobs_workers`` and ``bgjobs_faults`` come from the package's pytest plugin.
"""

import datetime as dt
import json
import os
from pathlib import Path

import pytest

#: Short leases, so the jobs of a killed process come back in about 2.5 s.
OVERRIDES = {"LEASE_SECONDS": 2, "HEARTBEAT_SECONDS": 0.5}
#: Every PostgreSQL restart is noted here first, for others on the server.
RESTART_LOG = Path(os.environ.get("BGJOBS_CHAOS_RESTART_LOG", "/tmp/pg_restart.log"))  # noqa: S108


def pytest_configure(config):
    # Also registered in setup.cfg; here too so that this directory runs
    # under --strict-markers on its own.
    config.addinivalue_line(
        "markers", "chaos: kills workers, restarts PostgreSQL, stops Redis; run alone"
    )


def pytest_collection_modifyitems(config, items):
    # Opt-in: a plain ``pytest`` must not restart the developer's PostgreSQL.
    expression = config.getoption("markexpr") or ""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        reason = "chaos tests run alone: pytest -m chaos -p no:xdist"
    elif "chaos" not in expression or "not chaos" in expression:
        reason = "chaos tests run only when selected: pytest -m chaos -p no:xdist"
    else:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("chaos"):
            item.add_marker(skip)


@pytest.fixture
def chaos_workers(bgjobs_workers):
    """Start ``runworkers`` on the test database with short leases."""

    def start(*flags, **env):
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "BGJOBS_OVERRIDES": json.dumps(OVERRIDES),
            # Each chaos job writes a row: keep the connections open.
            "CONN_MAX_AGE": "60",
            **env,
        }
        return bgjobs_workers(*flags, **env)

    return start


@pytest.fixture
def restart_postgresql(bgjobs_faults):
    """Restart PostgreSQL (noted in RESTART_LOG first); return the seconds
    until the test database answered again."""

    def restart():
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with RESTART_LOG.open("a") as log:
            log.write(f"{stamp} restart\n")
        return bgjobs_faults.restart_postgresql()

    return restart
