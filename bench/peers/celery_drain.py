"""Celery reference drain: ready tasks through the Redis broker, drained by
``celery worker --pool threads`` processes, timed like ``bench/run.py``.

Usage (from the project root, after ``pip install -e ".[bench]"``)::

    .venv/bin/python bench/peers/celery_drain.py [--jobs 10000]
        [--body noop|incr] [--processes 2] [--concurrency 8]

Progress goes to stderr; the last line on stdout is one JSON object of the
figures. The same module is the Celery app the worker processes load
(``celery -A bench.peers.celery_drain``). Only the Redis database of
``--redis`` (default 11) is flushed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import stop  # noqa: E402

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/11")
STATS = "bench:stats:"
COUNTER = "bench:incr"
REPORT_INTERVAL = 0.02

app = Celery("bench_peers", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_redirect_stdouts=False,
)
client = redis.Redis.from_url(REDIS_URL)


class Span:
    """Count, first start and last end of the tasks run in this process.

    Kept in memory and published to Redis every ``REPORT_INTERVAL`` by one
    thread, so that timing a task costs no round trip of its own.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.first = math.inf
        self.last = 0.0

    def add(self, start, end):
        with self.lock:
            self.count += 1
            self.first = min(self.first, start)
            self.last = max(self.last, end)

    def snapshot(self):
        with self.lock:
            return {"count": self.count, "first": self.first, "last": self.last}


SPAN = Span()
REPORTER_STOP = threading.Event()


@app.task(name="bench.noop", ignore_result=True)
def noop():
    start = time.time()
    SPAN.add(start, time.time())


@app.task(name="bench.incr", ignore_result=True)
def incr():
    start = time.time()
    client.incr(COUNTER)
    SPAN.add(start, time.time())


def publish():
    client.hset(f"{STATS}{os.getpid()}", mapping=SPAN.snapshot())


def report():
    while not REPORTER_STOP.wait(REPORT_INTERVAL):
        publish()


@worker_ready.connect
def start_reporter(**kwargs):
    publish()
    threading.Thread(target=report, name="bench-reporter", daemon=True).start()


@worker_shutdown.connect
def stop_reporter(**kwargs):
    REPORTER_STOP.set()
    publish()


# -- the driver ---------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--body", choices=("noop", "incr"), default="noop")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--redis", default=REDIS_URL, help="broker; flushed")
    parser.add_argument("--timeout", type=float, default=300)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ["BENCH_CELERY_REDIS"] = args.redis
    app.conf.broker_url = args.redis
    db = redis.Redis.from_url(args.redis)
    db.flushdb()
    enqueue_rate = enqueue(args.jobs, args.body)
    log(f"enqueued {args.jobs} {args.body} tasks ({enqueue_rate:.0f} tasks/s)")
    load = os.getloadavg()[0]
    redis_cpu = server_cpu(db)
    cpu = children_cpu()
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as errors:
        workers = [spawn(i, args, errors) for i in range(args.processes)]
        try:
            stats = wait_done(db, args, workers, errors)
            wall = time.perf_counter() - started
        finally:
            for worker in workers:
                stop(worker)
    cpu = children_cpu() - cpu
    redis_cpu = server_cpu(db) - redis_cpu
    check_counter(db, args)
    span = max(s["last"] for s in stats) - min(s["first"] for s in stats)
    result = {
        "peer": "celery",
        "pool": "threads",
        "body": args.body,
        "jobs": args.jobs,
        "processes": args.processes,
        "concurrency": args.concurrency,
        "enqueue_rate": enqueue_rate,
        "wall": wall,
        "wall_rate": args.jobs / wall,
        "span": span,
        "row_rate": args.jobs / span,
        "cpu_us": cpu / args.jobs * 1e6,
        "redis_cpu_us": redis_cpu / args.jobs * 1e6,
        "load": load,
    }
    log(
        f"drain: wall {wall:.2f} s ({result['wall_rate']:.0f} jobs/s), span "
        f"{result['row_rate']:.0f} jobs/s, worker CPU {result['cpu_us']:.0f} us/job"
    )
    print(json.dumps(result), flush=True)
    return 0


def log(text):
    print(f"[celery] {text}", file=sys.stderr, flush=True)


def enqueue(count, body):
    """Publish ``count`` tasks over one producer; return tasks per second."""
    task = app.tasks[f"bench.{body}"]
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            task.apply_async(producer=producer)
    return count / (time.perf_counter() - started)


def spawn(index, args, errors):
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.peers.celery_drain",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(args.concurrency),
        "--hostname",
        f"bench{index}@%h",
        "--loglevel",
        "WARNING",
        # Start-up handshakes and worker events only; no effect per task.
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_CELERY_REDIS=args.redis)
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,
    )


def wait_done(db, args, workers, errors):
    """Poll the published spans until every task has run; return them."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        stats = read_stats(db)
        if sum(s["count"] for s in stats) >= args.jobs:
            return stats
        for worker in workers:
            if worker.poll() is not None:
                errors.seek(0)
                sys.exit(
                    f"celery worker exited with {worker.returncode}:\n{errors.read()}"
                )
        time.sleep(0.01)
    sys.exit(f"timed out after {args.timeout} s")


def read_stats(db):
    stats = []
    for key in db.scan_iter(f"{STATS}*"):
        raw = db.hgetall(key)
        stats.append(
            {
                "count": int(raw[b"count"]),
                "first": float(raw[b"first"]),
                "last": float(raw[b"last"]),
            }
        )
    return [s for s in stats if s["count"]]


def check_counter(db, args):
    if args.body != "incr":
        return
    value = int(db.get(COUNTER) or 0)
    if value != args.jobs:
        sys.exit(f"counter is {value}, expected {args.jobs}")


def children_cpu():
    """CPU seconds (user + system) of the waited-for worker processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(db):
    """CPU seconds the Redis server has used (all clients, not only ours)."""
    info = db.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


if __name__ == "__main__":
    sys.exit(main())
