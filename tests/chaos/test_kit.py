"""The fault-injection kit itself (``django_bgjobs.testing``): the
``Workers`` handle on a real ``runworkers`` process, and the service commands
and their errors. Nothing here touches a service other tests use, so these
run in the normal suite."""

from pathlib import Path

import pytest

from django_bgjobs import testing
from django_bgjobs.testing import FaultInjectionFailed, child_pids

pytestmark = pytest.mark.slow


def state(pid):
    """Return the state letter of ``pid`` in /proc (T: stopped)."""
    return testing._stat(pid)[0]


def test_workers_handle_finds_kills_pauses_and_stops_worker_processes(
    chaos_workers, wait_until
):
    workers = chaos_workers("--processes", "2", "--concurrency", "1")
    children = workers.wait_for_children(2)
    assert children == child_pids(workers.pid)

    with pytest.raises(FaultInjectionFailed, match=r"^1 is not a worker process"):
        workers.kill_child(1)
    victim = workers.kill_child()
    assert victim in children
    replaced = wait_until(
        lambda: len(kids := workers.children()) == 2 and victim not in kids and kids,
        timeout=30,
        message="a replacement worker process",
    )
    survivor = next(pid for pid in replaced if pid in children)
    with workers.paused(survivor):
        assert state(survivor) == "T"
    assert state(survivor) != "T"

    assert workers.stop() == 0
    assert not workers.alive()
    assert workers.children() == []
    assert "died (signal 9); starting another" in workers.log()


def test_workers_close_kills_the_orphans_of_a_killed_supervisor(chaos_workers):
    workers = chaos_workers("--processes", "2", "--concurrency", "1")
    children = workers.wait_for_children(2)
    # Stopped, the orphans cannot notice the supervisor is gone and exit.
    for pid in children:
        workers.pause(pid)

    workers.kill_supervisor()
    assert not workers.alive()
    assert workers.group() == children
    workers.close()

    assert workers.group() == []
    # Gone, or zombies of an init that does not reap them.
    assert all((testing._stat(pid) or "Z")[0] == "Z" for pid in children)


def test_the_postgresql_restart_command_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(testing.PG_RESTART_COMMAND_ENV, "docker restart 'my pg'")
    assert testing.postgresql_restart_command() == ["docker", "restart", "my pg"]


@pytest.mark.skipif(
    not Path("/etc/postgresql").is_dir(), reason="no Debian PostgreSQL cluster"
)
def test_the_default_postgresql_restart_command_names_the_newest_cluster(
    monkeypatch,
):
    monkeypatch.delenv(testing.PG_RESTART_COMMAND_ENV, raising=False)
    newest = max((p.name for p in Path("/etc/postgresql").iterdir()), key=int)
    assert testing.postgresql_restart_command() == [
        "pg_ctlcluster", "--skip-systemctl-redirect", newest, "main", "restart"
    ]  # fmt: skip


def test_a_failing_service_command_raises_with_its_output(monkeypatch):
    monkeypatch.setenv(
        testing.REDIS_STOP_COMMAND_ENV, "sh -c 'echo no way >&2; exit 3'"
    )
    with pytest.raises(FaultInjectionFailed, match=r"exited with 3: no way$"):
        testing.stop_redis(timeout=5)
