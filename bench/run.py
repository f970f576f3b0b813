"""Benchmark enqueue, drain and enqueue-to-start latency on each database.

Usage (from the project root)::

    .venv/bin/python bench/run.py [--vendors sqlite,postgresql] [--runs 3]
                                  [--jobs 10000]

The parent process runs one child per vendor (Django binds one database per
process); each child recreates its database, runs every measurement
``--runs`` times, interleaved, and hands its raw figures back as JSON. The
parent prints each run as it comes and a table of medians at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BENCH_URL = "postgres://postgres@127.0.0.1:5432/bench"
SQLITE_PATH = Path("/tmp/bench.sqlite3")  # noqa: S108
URLS = {"postgresql": PG_BENCH_URL, "sqlite": f"sqlite:///{SQLITE_PATH}"}


# -- parent: one child per vendor, then the table ---------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vendors", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per drain")
    parser.add_argument("--single", type=int, default=2_000, help="single enqueues")
    parser.add_argument("--bulk", type=int, default=50_000, help="bulk enqueues")
    parser.add_argument("--chunk", type=int, default=1_000, help="enqueue_many size")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--concurrency", default="4,8,16", help="drain thread counts to try"
    )
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="latency jobs/s")
    parser.add_argument(
        "--only",
        default="single,bulk,drain,latency",
        help="comma-separated subset of single,bulk,drain,latency",
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="PostgreSQL synchronous_commit for the bench database; 'off' "
        "shows what the workers do when a commit costs no disk flush",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="only recreate the database(s) with N ready jobs, for profiling",
    )
    parser.add_argument("--child", choices=sorted(URLS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    vendors = [v.strip() for v in args.vendors.split(",") if v.strip()]
    unknown = set(vendors) - set(URLS)
    if unknown:
        sys.exit(f"unknown vendor(s): {', '.join(sorted(unknown))}")
    results = {}
    started = time.monotonic()
    load = os.getloadavg()[0]
    for vendor in vendors:
        results[vendor] = run_child(vendor, argv or sys.argv[1:])
    if args.seed is not None:
        return 0
    print_table(args, results)
    print(
        f"\ntotal bench time {time.monotonic() - started:.0f} s; 1-minute load "
        f"average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        f"({os.cpu_count()} CPUs)"
    )
    return 0


def run_child(vendor, argv):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        command = [sys.executable, __file__, *argv, "--child", vendor, "--out", path]
        code = subprocess.call(command, env=vendor_env(vendor), cwd=ROOT)
        if code:
            sys.exit(f"{vendor}: benchmark child exited with {code}")
        return json.loads(Path(path).read_text())
    finally:
        Path(path).unlink(missing_ok=True)


def vendor_env(vendor):
    env = dict(os.environ)
    env.update(
        DATABASE_URL=URLS[vendor],
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


def median(values):
    return statistics.median(values) if values else float("nan")


def print_table(args, results):
    print("\n" + "=" * 78)
    print(
        f"median of {args.runs} run(s); drain: {args.jobs} no-op jobs, "
        f"--processes {args.processes}; latency: {args.latency_jobs} jobs "
        f"at {args.rate:g}/s"
    )
    for vendor, data in results.items():
        print(f"\n{vendor}  ({data['settings']})")
        print(f"  {'figure':<36} {'median':>10}   runs")
        for name, unit, values in rows(data):
            shown = ", ".join(fmt(v, unit) for v in values)
            text = fmt(median(values), unit)
            print(f"  {name + ' (' + unit + ')':<36} {text:>10}   [{shown}]")
        best = best_drain(data)
        if best:
            print(f"  best drain: --concurrency {best[0]} ({best[1]:.0f} jobs/s rows)")


def fmt(value, unit):
    digits = {"ms": 1, "s": 2}.get(unit, 0)
    return f"{value:.{digits}f}"


def rows(data):
    figures = data["figures"]
    order = [
        ("enqueue single", "jobs/s", "single"),
        ("enqueue bulk", "jobs/s", "bulk"),
    ]
    for label, unit, key in order:
        if figures.get(key):
            yield label, unit, figures[key]
    for c in sorted(data["drain"], key=int):
        runs = data["drain"][c]
        yield f"drain C={c} wall", "jobs/s", [r["wall_rate"] for r in runs]
        yield f"drain C={c} rows", "jobs/s", [r["row_rate"] for r in runs]
        yield f"drain C={c} wall time", "s", [r["wall"] for r in runs]
        yield f"drain C={c} worker CPU", "us/job", [r["cpu_us"] for r in runs]
    for q in ("p50", "p95", "p99"):
        if figures.get(q):
            yield f"latency {q}", "ms", figures[q]


def best_drain(data):
    medians = {
        c: median([r["row_rate"] for r in runs]) for c, runs in data["drain"].items()
    }
    if not medians:
        return None
    c = max(medians, key=medians.get)
    return c, medians[c]


# -- child: one vendor --------------------------------------------------------


def child(args):
    # Run as a script, sys.path[0] is bench/; its settings.py and jobs.py
    # must not shadow top-level names.
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path[0] = str(ROOT)
    fresh_database(args.child, args.synchronous_commit)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.seed is not None:
        seed(args.seed, args.chunk)
        analyze()
        say(args.child, 0, f"seeded {args.seed} jobs; DATABASE_URL={URLS[args.child]}")
        Path(args.out).write_text("null")
        return 0
    only = set(args.only.split(","))
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    data = {
        "settings": describe(settings.BGJOBS, args),
        "figures": {},
        "drain": {str(c): [] for c in concurrencies} if "drain" in only else {},
    }
    figures = data["figures"]
    for run in range(1, args.runs + 1):
        say(args.child, run, "---")
        if "single" in only:
            add(figures, "single", bench_single(args.single), args.child, run)
        if "bulk" in only:
            add(figures, "bulk", bench_bulk(args.bulk, args.chunk), args.child, run)
        if "drain" in only:
            for c in concurrencies:
                result = bench_drain(args, c)
                data["drain"][str(c)].append(result)
                say(
                    args.child,
                    run,
                    f"drain C={c}: wall {result['wall']:.2f} s "
                    f"({result['wall_rate']:.0f} jobs/s), rows "
                    f"{result['row_rate']:.0f} jobs/s, worker CPU "
                    f"{result['cpu_us']:.0f} us/job",
                )
        if "latency" in only:
            for q, value in bench_latency(args).items():
                add(figures, q, value, args.child, run, unit="ms")
    Path(args.out).write_text(json.dumps(data))
    return 0


def say(vendor, run, text):
    print(f"[{vendor} run {run}] {text}", flush=True)


def add(figures, key, value, vendor, run, unit="jobs/s"):
    figures.setdefault(key, []).append(value)
    say(vendor, run, f"{key}: {fmt(value, unit)} {unit}")


def describe(bgjobs, args):
    from django_bgjobs.conf import get_settings

    conf = get_settings()
    keys = ("POLL_INTERVAL", "CLAIM_BATCH_MAX", "FLUSH_INTERVAL")
    if args.child == "postgresql":
        keys = ("LISTEN_NOTIFY", "WAKE_POLL_INTERVAL", *keys)
    text = ", ".join(f"{k}={getattr(conf, k)}" for k in keys)
    if bgjobs:
        text += f"; BENCH_BGJOBS={json.dumps(bgjobs)}"
    if args.child == "postgresql" and args.synchronous_commit != "on":
        text += f"; synchronous_commit={args.synchronous_commit}"
    return text


def fresh_database(vendor, synchronous_commit):
    """Drop and create the bench database (the file, for SQLite)."""
    if vendor == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench WITH (FORCE)")
        conn.execute("CREATE DATABASE bench")
        conn.execute(
            f"ALTER DATABASE bench SET synchronous_commit = {synchronous_commit}"
        )


def reset():
    """Empty the job tables so that each measurement starts alike."""
    from django.db import connection

    tables = ("bgjobs_attempt", "bgjobs_deadletter", "bgjobs_job")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE bgjobs_job" if connection.vendor == "postgresql" else "ANALYZE"
        )


def seed(count, chunk):
    from bench.jobs import noop

    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        noop.enqueue_many([((), {})] * size)


def bench_single(count):
    from bench.jobs import noop

    reset()
    started = time.perf_counter()
    for _ in range(count):
        noop.enqueue()
    return count / (time.perf_counter() - started)


def bench_bulk(count, chunk):
    reset()
    started = time.perf_counter()
    seed(count, chunk)
    return count / (time.perf_counter() - started)


def worker_command(args, *flags):
    return [
        sys.executable,
        "-m",
        "django",
        "runworkers",
        "--processes",
        str(args.processes),
        *flags,
    ]


def bench_drain(args, concurrency):
    """Seed ready no-op jobs, run ``runworkers --burst`` and time it."""
    from django.db import connection
    from django.db.models import Max, Min

    from django_bgjobs.models import Job

    reset()
    seed(args.jobs, args.chunk)
    analyze()
    connection.close()
    command = worker_command(args, "--burst", "--concurrency", str(concurrency))
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command, env=os.environ, cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu
    if done.returncode:
        sys.exit(f"runworkers exited with {done.returncode}:\n{done.stderr}")
    succeeded = Job.objects.filter(status="succeeded").count()
    if succeeded != args.jobs:
        sys.exit(f"drain left {args.jobs - succeeded} jobs unfinished:\n{done.stderr}")
    span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    busy = (span["last"] - span["first"]).total_seconds()
    return {
        "wall": wall,
        "wall_rate": args.jobs / wall,
        "row_rate": args.jobs / busy,
        "cpu_us": cpu / args.jobs * 1e6,
    }


def children_cpu():
    """CPU seconds (user + system) of the waited-for worker processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_latency(args):
    """Enqueue at a steady rate to idle workers; percentiles of the wait."""
    from django.db import connection

    from bench.jobs import noop
    from django_bgjobs.models import Job

    reset()
    connection.close()
    # A file, not a pipe: a full pipe would block a worker that logs a lot.
    with tempfile.TemporaryFile(mode="w+") as log:
        workers = subprocess.Popen(
            worker_command(args),
            env=os.environ,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            last_warmup = warm_up(args, workers, log)
            interval = 1 / args.rate
            started = time.monotonic()
            ids = []
            for i in range(args.latency_jobs):
                pause = started + i * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                ids.append(noop.enqueue().id)
            wait_for(
                lambda: (
                    Job.objects.filter(id__in=ids, status="succeeded").count()
                    == len(ids)
                ),
                timeout=60,
                what="latency jobs to finish",
            )
        finally:
            stop(workers)
    waits = sorted(
        (started_at - created_at).total_seconds() * 1000
        for created_at, started_at in Job.objects.filter(
            id__gt=last_warmup
        ).values_list("created_at", "started_at")
    )
    return {q: percentile(waits, int(q[1:])) for q in ("p50", "p95", "p99")}


def warm_up(args, workers, log):
    """Wait until every worker process has run a job; return the last id."""
    from bench.jobs import noop
    from django_bgjobs.models import Job

    deadline = time.monotonic() + 30
    last = 0
    while time.monotonic() < deadline:
        if workers.poll() is not None:
            log.seek(0)
            sys.exit(f"runworkers exited early:\n{log.read()}")
        last = noop.enqueue().id
        seen = Job.objects.filter(status="succeeded").values("worker").distinct()
        if seen.count() >= args.processes:
            wait_for(
                lambda: not Job.objects.exclude(status="succeeded").exists(),
                timeout=30,
                what="warm-up jobs",
            )
            return last
        time.sleep(0.05)
    sys.exit("worker processes did not start within 30 s")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def stop(workers):
    if workers.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(workers.pid, signal.SIGTERM)
    try:
        workers.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(workers.pid, signal.SIGKILL)
        workers.wait()


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-q * len(sorted_values) // 100))
    return sorted_values[min(rank, len(sorted_values)) - 1]


if __name__ == "__main__":
    sys.exit(main())
