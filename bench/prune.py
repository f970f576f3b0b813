"""Prune a million finished jobs while jobs run: does their latency suffer?

Usage (from the project root)::

    .venv/bin/python bench/prune.py [--rows 1000000] [--rate 20]
                                    [--baseline 30] [--runs 3]

Each run seeds ``--rows`` finished jobs (one attempt each, expired) in the
PostgreSQL database ``bench_prune``, starts ``runworkers --processes 2
--concurrency 8`` and enqueues ``bench.noop`` jobs at ``--rate`` per second
from start to end. For the first ``--baseline`` seconds this script holds
the maintenance lease itself, so nothing is pruned; then it lets go, a
worker takes the lease at its next heartbeat and prunes the seeded rows with
the library's own pruner. The run ends when the last seeded row is gone.

Printed per run and as medians: enqueue-to-start latency p50/p95/p99/max of
the jobs enqueued before pruning (baseline) and of those enqueued while it
went on, and how fast the rows went (rows per second of pruning).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "bench_prune"
URL = f"postgres://postgres@127.0.0.1:5432/{NAME}"

SEED = """
INSERT INTO bgjobs_job (task, queue, priority, status, args, kwargs, result,
    error, run_at, created_at, started_at, finished_at, attempt, uncharged,
    max_attempts, expires_at, worker)
SELECT 'bench.noop', 'default', 0,
    CASE WHEN i %% 20 = 0 THEN 'failed' ELSE 'succeeded' END,
    jsonb_build_array(i %% 100000), '{}'::jsonb, to_jsonb(i %% 1000),
    CASE WHEN i %% 20 = 0 THEN 'TimeoutError: upstream' ELSE '' END,
    f - interval '40 ms', f - interval '40 ms', f - interval '5 ms', f,
    1, 0, 3, %(expired)s::timestamptz, 'web-1:1000'
FROM (
    SELECT i, %(start)s::timestamptz + interval '1 ms' * i AS f
    FROM generate_series(1, %(n)s::int) AS i
) AS s
"""
ATTEMPTS = """
INSERT INTO bgjobs_attempt (job_id, number, worker, started_at, finished_at,
    outcome, error_class, error_message, traceback)
SELECT id, 1, worker, started_at, finished_at,
    CASE WHEN status = 'failed' THEN 'failed' ELSE 'succeeded' END,
    '', error, ''
FROM bgjobs_job
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=20.0, help="jobs/s enqueued")
    parser.add_argument("--baseline", type=float, default=30.0, help="seconds")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--bgjobs", default="{}", help="BGJOBS overrides for the workers (JSON)"
    )
    parser.add_argument("--out", help="write the raw figures here (JSON)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ["DATABASE_URL"] = URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_BGJOBS"] = args.bgjobs
    sys.path.insert(0, str(ROOT))
    fresh_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    runs = []
    for run in range(1, args.runs + 1):
        result = one_run(args)
        runs.append(result)
        print(f"run {run}: {line(result)}", flush=True)
    print_table(runs)
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=2))


def fresh_database():
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{NAME}"')


def seed(rows):
    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bgjobs_attempt, bgjobs_deadletter, bgjobs_job")
        cursor.execute(
            SEED,
            {
                "n": rows,
                "start": now - dt.timedelta(milliseconds=rows + 60_000),
                "expired": now - dt.timedelta(seconds=1),
            },
        )
        cursor.execute(ATTEMPTS)
        cursor.execute("SELECT max(id) FROM bgjobs_job")
        (last,) = cursor.fetchone()
        cursor.execute("VACUUM (ANALYZE) bgjobs_job")
        cursor.execute("VACUUM (ANALYZE) bgjobs_attempt")
    return last, time.perf_counter() - started


def hold_lease(seconds):
    """Hold the maintenance lease as ``bench`` (None: let it go)."""
    from django.utils import timezone

    from django_bgjobs.models import Lease
    from django_bgjobs.worker.maintenance import MAINTENANCE_LEASE

    if seconds is None:
        Lease.objects.filter(name=MAINTENANCE_LEASE, holder="bench").delete()
        return
    Lease.objects.update_or_create(
        name=MAINTENANCE_LEASE,
        defaults={
            "holder": "bench",
            "expires_at": timezone.now() + dt.timedelta(seconds=seconds),
        },
    )


def one_run(args):
    from django.db import connection

    from bench.jobs import noop
    from bench.run import spawn_workers, stop, worker_command
    from django_bgjobs.models import Job, Lease
    from django_bgjobs.worker.maintenance import MAINTENANCE_LEASE

    hold_lease(3600)
    last_seeded, seed_seconds = seed(args.rows)
    connection.close()
    command = worker_command(args, "--concurrency", str(args.concurrency))
    with tempfile.TemporaryFile(mode="w+") as log:
        workers = spawn_workers(command, log)
        try:
            after_warmup = warm_up(args, workers, log, last_seeded)
            jobs = []  # (id, enqueued at, monotonic)
            interval = 1 / args.rate
            began = time.monotonic()
            released = prune_start = prune_end = None
            i = 0
            while prune_end is None:
                pause = began + i * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                jobs.append((noop.enqueue().id, time.monotonic()))
                i += 1
                now = time.monotonic()
                if released is None and now - began >= args.baseline:
                    hold_lease(None)
                    released = now
                if released is not None and prune_start is None:
                    # The pruner starts as soon as a worker takes the lease.
                    taken = Lease.objects.filter(name=MAINTENANCE_LEASE).exclude(
                        holder="bench"
                    )
                    if taken.exists():
                        prune_start = now
                check = prune_start is not None and i % max(1, int(args.rate)) == 0
                if check and not Job.objects.filter(id__lte=last_seeded).exists():
                    prune_end = now
                if now - began > args.baseline + 3600:
                    sys.exit("pruning did not finish within an hour")
            ids = [job_id for job_id, _ in jobs]
            deadline = time.monotonic() + 60
            while Job.objects.filter(id__in=ids, status="succeeded").count() < len(ids):
                if time.monotonic() > deadline:
                    sys.exit("latency jobs did not finish within 60 s")
                time.sleep(0.1)
        finally:
            stop(workers)
            hold_lease(3600)
    rows = Job.objects.filter(id__in=ids, id__gt=after_warmup)
    waits = {
        job_id: (started_at - created_at).total_seconds() * 1000
        for job_id, created_at, started_at in rows.values_list(
            "id", "created_at", "started_at"
        )
    }
    baseline = sorted(waits[job_id] for job_id, at in jobs if at < prune_start)
    during = sorted(
        waits[job_id] for job_id, at in jobs if prune_start <= at <= prune_end
    )
    prune_seconds = prune_end - prune_start
    return {
        "rows": args.rows,
        "seed_seconds": seed_seconds,
        "prune_seconds": prune_seconds,
        "rows_per_second": args.rows / prune_seconds,
        "baseline": summary(baseline),
        "pruning": summary(during),
    }


def warm_up(args, workers, log, last_seeded):
    """Wait until every worker process has run a job; return the last id."""
    from bench.jobs import noop
    from django_bgjobs.models import Job

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if workers.poll() is not None:
            log.seek(0)
            sys.exit(f"runworkers exited early:\n{log.read()}")
        last = noop.enqueue().id
        ours = Job.objects.filter(id__gt=last_seeded)
        seen = ours.filter(status="succeeded").values("worker").distinct().count()
        if seen >= args.processes:
            while ours.exclude(status="succeeded").exists():
                time.sleep(0.05)
            return last
        time.sleep(0.05)
    sys.exit("worker processes did not start within 30 s")


def summary(values):
    from bench.run import percentile

    if not values:
        return {}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": values[-1],
    }


def line(result):
    b, p = result["baseline"], result["pruning"]
    return (
        f"pruned {result['rows']:,} rows in {result['prune_seconds']:.1f} s "
        f"({result['rows_per_second']:,.0f} rows/s); latency ms p50/p95/p99/max: "
        f"baseline {b['p50']:.1f}/{b['p95']:.1f}/{b['p99']:.1f}/{b['max']:.1f} "
        f"(n={b['n']}), pruning {p['p50']:.1f}/{p['p95']:.1f}/{p['p99']:.1f}/"
        f"{p['max']:.1f} (n={p['n']})"
    )


def print_table(runs):
    def med(path):
        return statistics.median(
            r[path[0]][path[1]] if len(path) == 2 else r[path[0]] for r in runs
        )

    print(f"\nmedians of {len(runs)} run(s)")
    print("| phase | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for phase in ("baseline", "pruning"):
        cells = " | ".join(
            f"{med((phase, q)):.1f}" for q in ("p50", "p95", "p99", "max")
        )
        print(f"| {phase} | {cells} |")
    print(
        f"pruning: {med(('prune_seconds',)):.1f} s, "
        f"{med(('rows_per_second',)):,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
