"""The supervisor: forks worker processes, restarts the ones that crash, and
turns SIGTERM/SIGINT into a graceful stop of every child.

The supervisor itself never touches the database and holds no threads, so a
fork is safe and cheap; each child opens its own connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from django.db import connections

from .process import ProcessOptions, WorkerProcess

logger = logging.getLogger("django_bgjobs.worker")


@dataclasses.dataclass
class SupervisorOptions:
    processes: int = 1
    concurrency: int = 8
    queues: Sequence[str] | None = None
    burst: bool = False
    grace: float = 30.0


class Supervisor:
    """Keeps ``processes`` children running until told to stop."""

    restart_delay_max = 5.0

    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        self.children: dict[int, int] = {}  # pid -> slot
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
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                code = self._child(stop_signals)
            except BaseException:
                logger.exception("worker process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        self.children[pid] = slot

    def _child(self, stop_signals: set[signal.Signals]) -> int:
        parent = os.getppid()
        process = WorkerProcess(
            ProcessOptions(
                queues=self.options.queues,
                concurrency=self.options.concurrency,
                burst=self.options.burst,
                grace=self.options.grace,
            )
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
            slot = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping or (self.options.burst and code == 0):
                continue
            self._restart(pid, slot, code)

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
