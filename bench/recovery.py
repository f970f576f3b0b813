"""Measure how soon the job of a killed worker runs again, on PostgreSQL.

Usage (from the project root)::

    .venv/bin/python bench/recovery.py [--runs 3] [--machine]

Two cases, with the library's default settings (30 s lease, 10 s heartbeat):

* ``child``: ``kill -9`` of the worker process that runs a 60-second job,
  under a live supervisor. The supervisor sees the death and records the job
  at once; the figure is the time from the kill until the job is claimed
  again.
* ``machine`` (with ``--machine``): ``kill -9`` of a whole ``runworkers``
  (supervisor and children, as when a machine dies) while a second
  ``runworkers`` runs; the job waits for its lease to expire and the
  maintenance holder to reap it. About 40 s a run.

Prints each run and the median.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = "postgres://postgres@127.0.0.1:5432/bench_recovery"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--machine", action="store_true")
    args = parser.parse_args()
    sys.path[0] = str(ROOT)
    os.environ.update(
        DATABASE_URL=URL, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT)
    )
    subprocess.run(
        [
            "dropdb",
            "-U",
            "postgres",
            "-h",
            "127.0.0.1",
            "--if-exists",
            "bench_recovery",
        ],
        check=True,
    )
    subprocess.run(
        ["createdb", "-U", "postgres", "-h", "127.0.0.1", "bench_recovery"], check=True
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    cases = ["child", *(["machine"] if args.machine else [])]
    for case in cases:
        figures = [measure(case) for _ in range(args.runs)]
        shown = ", ".join(f"{f:.2f}" for f in figures)
        print(f"{case}: median {statistics.median(figures):.2f} s  [{shown}]")
    return 0


def start() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "django", "runworkers", "--processes", "2"],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def measure(case: str) -> float:
    from bench.jobs import sleep
    from django_bgjobs.models import Job

    groups = [start()] + ([start()] if case == "machine" else [])
    try:
        handle = sleep.enqueue(60)
        job = wait_for(
            lambda: (
                Job.objects.filter(id=handle.id, attempt=1, status="running")
                .exclude(worker="")
                .first()
            ),
            60,
            "the first run",
        )
        pid = int(job.worker.split(":")[1])
        victim = next(p for p in groups if _is_in_group(pid, p.pid))
        killed = time.monotonic()
        if case == "child":
            os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(victim.pid, signal.SIGKILL)
        wait_for(
            lambda: Job.objects.filter(id=handle.id, attempt=2).exists(),
            120,
            "the second run",
        )
        took = time.monotonic() - killed
        print(f"  {case}: claimed again {took:.2f} s after the kill", flush=True)
        Job.objects.filter(id=handle.id).delete()
        return took
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group.pid, signal.SIGKILL)
            group.wait()


def _is_in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except ProcessLookupError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
