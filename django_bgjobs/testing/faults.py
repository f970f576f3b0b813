"""Fault injection for tests of django-bgjobs and of your own jobs.

``Workers`` runs a real ``runworkers`` subprocess whose worker processes a
test can kill, pause and resume; ``restart_postgresql``, ``stop_redis`` and
``start_redis`` take the services away and wait until they answer again.
Linux only: worker processes are found in ``/proc``. The pytest fixtures
``bgjobs_workers`` and ``bgjobs_faults`` (``testing.plugin``) kill every
process they started, and start Redis again, at teardown.
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

#: Environment variables that replace the default service commands.
PG_RESTART_COMMAND_ENV = "BGJOBS_PG_RESTART_COMMAND"
REDIS_STOP_COMMAND_ENV = "BGJOBS_REDIS_STOP_COMMAND"
REDIS_START_COMMAND_ENV = "BGJOBS_REDIS_START_COMMAND"

REDIS_START_COMMAND = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
REDIS_STOP_COMMAND = "redis-cli -p 6379 shutdown nosave"


class FaultInjectionFailed(RuntimeError):
    """A fault could not be injected, or a service did not come back."""


# -- worker processes ---------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Return the state letter, parent pid and process group of ``pid``, or
    None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may itself hold spaces or ")".
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def _live(match: Callable[[tuple[str, int, int]], bool]) -> list[int]:
    """Return the pids of live (not zombie) processes whose stat matches."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None and stat[0] not in "ZX" and match(stat):
            found.append(int(entry))
    return sorted(found)


def _stopped(pid: int) -> bool | None:
    """Return whether ``pid`` is stopped by a signal; None if it is gone."""
    stat = _stat(pid)
    return None if stat is None or stat[0] in "ZX" else stat[0] == "T"


def child_pids(parent: int) -> list[int]:
    """Return the pids of the live (not zombie) children of ``parent``.

    Scan ``/proc`` for processes whose parent is ``parent``; Linux only.
    """
    return _live(lambda stat: stat[1] == parent)


def database_url(alias: str = "default") -> str:
    """Return a URL (dj-database-url style) for the database ``alias`` uses.

    Inside a pytest-django test this is the test database, so a worker
    subprocess whose settings read ``DATABASE_URL`` works on the test's rows.
    """
    from django.db import connections

    connection = connections[alias]
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme, user, port = {
        "postgresql": ("postgres", "postgres", 5432),
        "mysql": ("mysql", "root", 3306),
    }[connection.vendor]
    user = s.get("USER") or user
    if s.get("PASSWORD"):
        user = f"{user}:{quote(s['PASSWORD'], safe='')}"
    host = s.get("HOST") or "127.0.0.1"
    return f"{scheme}://{user}@{host}:{s.get('PORT') or port}/{s['NAME']}"


class Workers:
    """A ``python -m django runworkers`` subprocess to inject faults into.

    The supervisor runs in a session (and process group) of its own, with its
    output in ``log_path``. Its environment is this process's, plus ``env``
    (pass ``DATABASE_URL``, ``DJANGO_SETTINGS_MODULE``, ``BGJOBS_OVERRIDES``
    or whatever your settings read). Use it as a context manager, or call
    ``close()``: either kills the whole process group.
    """

    def __init__(
        self,
        *flags: str,
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
    ) -> None:
        """Start ``runworkers`` with ``flags``.

        Raise ``FaultInjectionFailed`` on a system other than Linux.
        """
        if not sys.platform.startswith("linux"):
            raise FaultInjectionFailed("Workers needs Linux: it reads /proc.")
        self.log_path = Path(log_path)
        self.command = [python, "-m", "django", "runworkers", *flags]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603
                self.command,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The supervisor's pid (also the process group id)."""
        return self.process.pid

    def children(self) -> list[int]:
        """Return the pids of the supervisor's live worker processes."""
        return child_pids(self.pid)

    def group(self) -> list[int]:
        """Return the pids of every live process in the supervisor's process
        group: the supervisor, its worker processes, and their orphans."""
        return _live(lambda stat: stat[2] == self.pid)

    def wait_for_children(self, count: int, timeout: float = 30.0) -> list[int]:
        """Wait for ``count`` worker processes of the supervisor; return them.

        Raise ``FaultInjectionFailed`` after ``timeout`` seconds, or at once
        if the supervisor exits.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.children()
            if len(found) == count:
                return found
            if self.process.poll() is not None:
                raise FaultInjectionFailed(
                    f"runworkers exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise FaultInjectionFailed(
                    f"runworkers has {len(found)} worker processes, not {count}, "
                    f"after {timeout} s:\n{self.log()}"
                )
            time.sleep(0.05)

    def kill_child(self, pid: int | None = None) -> int:
        """Kill worker process ``pid`` (a random one if None) with SIGKILL.

        Return the pid killed. Raise ``FaultInjectionFailed`` if there is no
        worker process, or ``pid`` is not one of them.
        """
        children = self.children()
        if pid is None:
            if not children:
                raise FaultInjectionFailed("runworkers has no worker process to kill")
            pid = random.choice(children)  # noqa: S311
        elif pid not in children:
            raise FaultInjectionFailed(f"{pid} is not a worker process of {self.pid}")
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_supervisor(self) -> None:
        """Kill the supervisor alone with SIGKILL, and reap it."""
        self.process.kill()
        self.process.wait()

    def pause(self, pid: int) -> None:
        """Stop process ``pid`` with SIGSTOP; return once it is stopped."""
        os.kill(pid, signal.SIGSTOP)
        _wait(lambda: _stopped(pid) is not False, 5.0, f"{pid} did not stop")

    def resume(self, pid: int) -> None:
        """Let process ``pid`` go on with SIGCONT; return once it runs."""
        os.kill(pid, signal.SIGCONT)
        _wait(lambda: _stopped(pid) is not True, 5.0, f"{pid} did not resume")

    @contextlib.contextmanager
    def paused(self, pid: int, seconds: float = 0.0) -> Iterator[None]:
        """Keep ``pid`` stopped for the ``with`` block, and at least
        ``seconds``; resume it on the way out, even on an error."""
        started = time.monotonic()
        self.pause(pid)
        try:
            yield
            time.sleep(max(0.0, started + seconds - time.monotonic()))
        finally:
            with contextlib.suppress(ProcessLookupError):
                self.resume(pid)

    def stop(self, timeout: float = 30.0) -> int:
        """Send SIGTERM to the supervisor and wait; return its exit code.

        Raise ``subprocess.TimeoutExpired`` if it runs past ``timeout``.
        """
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def alive(self) -> bool:
        """Return True while the supervisor runs."""
        return self.process.poll() is None

    def log(self) -> str:
        """Return what the supervisor and its worker processes wrote so far."""
        return self.log_path.read_text(errors="replace")

    def close(self, timeout: float = 10.0) -> None:
        """Kill the whole process group with SIGKILL and wait until none of
        it runs, for at most ``timeout`` seconds.

        Worker processes of a supervisor that was killed alone are in the
        group too.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        while self.group():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- services -----------------------------------------------------------------


def _command(env_name: str, default: str) -> list[str]:
    return shlex.split(os.environ.get(env_name) or default)


def _run(command: Sequence[str], timeout: float) -> None:
    try:
        done = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FaultInjectionFailed(f"{shlex.join(command)} failed: {error}") from error
    if done.returncode != 0:
        raise FaultInjectionFailed(
            f"{shlex.join(command)} exited with {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()}"
        )


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise FaultInjectionFailed(f"{what} after {timeout} s")
        time.sleep(0.05)


def postgresql_restart_command() -> list[str]:
    """Return the command ``restart_postgresql`` runs.

    ``$BGJOBS_PG_RESTART_COMMAND`` if set, otherwise
    ``pg_ctlcluster --skip-systemctl-redirect VERSION main restart`` with
    the highest version in ``/etc/postgresql``. Raise
    ``FaultInjectionFailed`` if neither gives a command.
    """
    if os.environ.get(PG_RESTART_COMMAND_ENV):
        return _command(PG_RESTART_COMMAND_ENV, "")
    try:
        versions = [v for v in os.listdir("/etc/postgresql") if v.isdigit()]
    except FileNotFoundError:
        versions = []
    if not versions:
        raise FaultInjectionFailed(
            f"no PostgreSQL cluster in /etc/postgresql; set {PG_RESTART_COMMAND_ENV}"
        )
    version = max(versions, key=int)
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]


def database_answers(alias: str = "default") -> bool:
    """Return True if a new connection to database ``alias`` runs a query."""
    from django.db import DatabaseError, connections

    connection = connections.create_connection(alias)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False
    finally:
        connection.close()


def restart_postgresql(alias: str = "default", timeout: float = 60.0) -> float:
    """Restart the PostgreSQL server and wait until ``alias`` answers again.

    Return the seconds from the restart command's start until a new
    connection ran a query. Close this process's connections, which the
    restart broke. Raise ``FaultInjectionFailed`` if the command fails or the
    database does not answer within ``timeout`` seconds.
    """
    from django.db import connections

    started = time.monotonic()
    _run(postgresql_restart_command(), timeout)
    _wait(
        lambda: database_answers(alias),
        timeout - (time.monotonic() - started),
        f"database {alias!r} does not answer",
    )
    connections.close_all()
    return time.monotonic() - started


def redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """Return True if a Redis server at ``host``:``port`` answers PING."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop_redis(
    host: str = "127.0.0.1", port: int = 6379, timeout: float = 30.0
) -> None:
    """Shut the Redis server down and wait until it no longer answers.

    Run ``$BGJOBS_REDIS_STOP_COMMAND``, by default
    ``redis-cli -p 6379 shutdown nosave``. Raise ``FaultInjectionFailed`` if
    the command fails or Redis still answers after ``timeout`` seconds.
    """
    _run(_command(REDIS_STOP_COMMAND_ENV, REDIS_STOP_COMMAND), timeout)
    _wait(lambda: not redis_answers(host, port), timeout, "Redis still answers")


def start_redis(
    host: str = "127.0.0.1", port: int = 6379, timeout: float = 30.0
) -> None:
    """Start the Redis server and wait until it answers PING.

    Run ``$BGJOBS_REDIS_START_COMMAND``, by default ``redis-server`` on
    127.0.0.1:6379 as a daemon, with no persistence. Raise
    ``FaultInjectionFailed`` if the command fails or Redis does not answer
    within ``timeout`` seconds.
    """
    _run(_command(REDIS_START_COMMAND_ENV, REDIS_START_COMMAND), timeout)
    _wait(lambda: redis_answers(host, port), timeout, "Redis does not answer")


class Faults:
    """Service faults for one test; ``undo()`` starts Redis again if this
    object stopped it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379) -> None:
        self.redis_address = (host, port)
        self.redis_stopped = False

    def restart_postgresql(
        self, alias: str = "default", timeout: float = 60.0
    ) -> float:
        """Run ``restart_postgresql``; return the seconds it took."""
        return restart_postgresql(alias, timeout)

    def stop_redis(self, timeout: float = 30.0) -> None:
        """Run ``stop_redis`` on this object's Redis."""
        self.redis_stopped = True
        stop_redis(*self.redis_address, timeout=timeout)

    def start_redis(self, timeout: float = 30.0) -> None:
        """Run ``start_redis`` on this object's Redis."""
        start_redis(*self.redis_address, timeout=timeout)
        self.redis_stopped = False

    def undo(self) -> None:
        """Start Redis if this object stopped it and it does not answer."""
        if self.redis_stopped and not redis_answers(*self.redis_address):
            self.start_redis()
