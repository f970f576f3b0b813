"""The supervisor: forks worker processes, restarts the ones that crash, and
turns SIGTERM/SIGINT into a graceful stop of every child.

A child that exits with ``EXIT_TIMED_OUT`` (a job ran past its timeout) or
``EXIT_RECYCLE`` (its job or memory limit) is replaced at once, without the
crash backoff. Each child reports the nearest deadline of its jobs on a pipe;
one still alive ``kill_margin`` (10) seconds past it (its watchdog cannot
run, as when a job is stuck in C code holding the GIL) is killed with
SIGKILL.

When a child dies without a clean exit (killed, or crashed), the supervisor
records its running jobs at once (``maintenance.recover``): they do not wait
for their lease to run out. This is the one time the supervisor touches the
database; it closes the connection before it forks again. It holds no
threads, so a fork is safe and cheap; each child opens its own connections.
If the database is away, the reaper recovers those jobs after their lease.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from types import FrameType

from django.db import connections

from .maintenance import recover
from .process import ProcessOptions, WorkerProcess, make_worker_id
from .watchdog import EXIT_RECYCLE, EXIT_TIMED_OUT

#: Exit codes of a child that recorded or released all its jobs itself.
CLEAN_EXITS = (0, EXIT_RECYCLE, EXIT_TIMED_OUT)

logger = logging.getLogger("django_bgjobs.worker")


@dataclasses.dataclass
class SupervisorOptions:
    processes: int = 1
    concurrency: int = 8
    async_concurrency: int = 100
    queues: Sequence[str] | None = None
    burst: bool = False
    grace: float = 30.0
    max_jobs: int | None = None
    max_memory_mb: float | None = None


@dataclasses.dataclass
class Child:
    """A worker process as the supervisor sees it."""

    slot: int
    reports: int  # read end of the child's deadline pipe
    worker_id: str
    deadline: float | None = None  # time.monotonic() of its nearest deadline
    killed: bool = False


class Supervisor:
    """Keeps ``processes`` children running until told to stop."""

    restart_delay_max = 5.0
    #: Seconds past a job's deadline before its unresponsive process is killed.
    kill_margin = 10.0

    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.stop_sent_at: float | None = None
        self.crashes = 0
        self.last_crash = 0.0

    def run(self) -> int:
        """Run until stopped, or until burst-mode children finish; return 0."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        logger.info(
            "supervisor started pid=%s processes=%s concurrency=%s",
            os.getpid(),
            self.options.processes,
            self.options.concurrency,
        )
        connections.close_all()
        for slot in range(self.options.processes):
            self._spawn(slot)
        while self.children:
            self._reap_children()
            self._kill_overdue()
            if self.stopping:
                self._stop_children()
            time.sleep(0.05)
        logger.info("supervisor stopped pid=%s", os.getpid())
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            logger.info("supervisor stopping on %s", signal.Signals(signum).name)
        self.stopping = True

    def _spawn(self, slot: int) -> None:
        # Block the stop signals across the fork: a SIGTERM that reached the
        # child before it installed its own handler would be lost.
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        reports, report_fd = os.pipe()
        # The worker id is known on both sides of the fork: the supervisor
        # can then recover the child's jobs if it dies.
        suffix = uuid.uuid4().hex[:6]
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                for child in self.children.values():
                    os.close(child.reports)
                os.close(reports)
                os.set_blocking(report_fd, False)
                worker_id = make_worker_id(os.getpid(), suffix)
                code = self._child(stop_signals, report_fd, worker_id)
            except BaseException:
                logger.exception("worker process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        os.close(report_fd)
        os.set_blocking(reports, False)
        self.children[pid] = Child(slot, reports, make_worker_id(pid, suffix))

    def _child(
        self, stop_signals: set[signal.Signals], report_fd: int, worker_id: str
    ) -> int:
        parent = os.getppid()
        process = WorkerProcess(
            ProcessOptions(
                queues=self.options.queues,
                concurrency=self.options.concurrency,
                async_concurrency=self.options.async_concurrency,
                burst=self.options.burst,
                grace=self.options.grace,
                max_jobs=self.options.max_jobs,
                max_memory_mb=self.options.max_memory_mb,
                report_fd=report_fd,
            ),
            worker_id=worker_id,
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            process.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        threading.Thread(
            target=_watch_parent,
            args=(parent, process),
            name="bgjobs-parent",
            daemon=True,
        ).start()
        return process.run()

    def _reap_children(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            child = self.children.pop(pid)
            os.close(child.reports)
            code = os.waitstatus_to_exitcode(status)
            if code not in CLEAN_EXITS or child.killed:
                self._recover(pid, child, code)
            if self.stopping or (self.options.burst and code == 0):
                continue
            if code in (EXIT_RECYCLE, EXIT_TIMED_OUT) or child.killed:
                why = "recycled" if code == EXIT_RECYCLE else "a job timed out"
                logger.info("worker process %s exited (%s); starting another", pid, why)
                self._spawn(child.slot)
                continue
            self._restart(pid, child.slot, code)

    def _recover(self, pid: int, child: Child, code: int) -> None:
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        try:
            count = recover(
                child.worker_id,
                f"worker process {pid} died ({how})",
                killed_for_timeout=child.killed,
            )
            if count:
                logger.warning(
                    "recorded %d running jobs of dead worker process %s", count, pid
                )
        except Exception as error:
            logger.error(
                "could not recover the jobs of dead worker process %s (%s); the "
                "reaper will once their lease runs out",
                pid,
                error,
            )
        finally:
            # No connection may cross the next fork.
            connections.close_all()

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, child in self.children.items():
            _read_reports(child)
            if child.killed or child.deadline is None:
                continue
            if now > child.deadline + self.kill_margin:
                logger.error(
                    "worker process %s is %.1f s past a job's timeout and does "
                    "not respond; killing it",
                    pid,
                    now - child.deadline,
                )
                child.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _restart(self, pid: int, slot: int, code: int) -> None:
        # Restarts slow down while children keep crashing, and the count
        # starts over after a quiet minute.
        now = time.monotonic()
        if now - self.last_crash > 60:
            self.crashes = 0
        self.crashes += 1
        self.last_crash = now
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        logger.error("worker process %s died (%s); starting another", pid, how)
        time.sleep(min(0.05 * self.crashes, self.restart_delay_max))
        self._spawn(slot)

    def _stop_children(self) -> None:
        now = time.monotonic()
        if self.stop_sent_at is None:
            self.stop_sent_at = now
            self._signal_children(signal.SIGTERM)
        elif now - self.stop_sent_at > self.options.grace + 10:
            logger.error("worker processes ignored SIGTERM; killing them")
            self._signal_children(signal.SIGKILL)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _read_reports(child: Child) -> None:
    """Take the latest deadline the child wrote on its pipe, if any."""
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(child.reports, 4096):
            data += chunk
    lines = data.split(b"\n")[:-1]
    if lines:
        last = lines[-1]
        child.deadline = None if last == b"-" else float(last)


def _watch_parent(parent: int, process: WorkerProcess) -> None:
    # A supervisor killed by SIGKILL or the OOM killer forwards no signal;
    # without this its children would run on as orphans, claiming jobs.
    while not process.stopping.wait(1.0):
        if os.getppid() != parent:
            logger.error("supervisor %s is gone; stopping worker process", parent)
            process.stop()
            return


def run(options: SupervisorOptions) -> int:
    """Run a supervisor with ``options``; return the exit code."""
    return Supervisor(options).run()
