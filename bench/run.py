"""Benchmark enqueue, drain and enqueue-to-start latency on each database.

Usage (from the project root)::

    .venv/bin/python bench/run.py
        [--vendors sqlite,postgresql,postgresql+redis] [--runs 3]
        [--jobs 10000] [--body incr|noop] [--celery|--no-celery]
        [--finished-rows 10000000]

The parent runs one child process per run, vendor and table (Django binds
one database per process): run 1 of everything, then run 2, and so on, the
Celery reference drain last in each run. Each child measures once and hands
its raw figures back as JSON; the parent prints each figure as it comes and
a table of medians at the end, with each drain's ratio to Celery's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
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
#: Name of the bench databases: the PostgreSQL database and
#: ``/tmp/NAME.sqlite3``; the finished-rows scenario uses ``NAME_finished``.
DB = os.environ.get("BENCH_DB", "bench")
VENDORS = ("sqlite", "postgresql", "postgresql+redis")
CELERY_DRAIN = ROOT / "bench" / "peers" / "celery_drain.py"
INSTALL_HINT = (
    "install the bench extra: .venv/bin/pip install -e '.[bench]' "
    "(Celery with the Redis broker)"
)
#: Finished rows by the seeding: tasks and queues they cycle through.
SEED_TASKS = (
    "shop.send_receipt",
    "shop.sync_stock",
    "reports.build_daily",
    "emails.digest",
    "bench.incr",
    "bench.noop",
    "search.reindex",
)
SEED_QUEUES = ("default", "default", "emails", "reports", "low")
SEED_DAYS = 30


def database(vendor, table):
    """(name, DATABASE_URL) of ``vendor``'s database for ``table``."""
    name = DB if table == "empty" else f"{DB}_finished"
    if vendor == "sqlite":
        return name, f"sqlite:////tmp/{name}.sqlite3"
    return name, f"postgres://postgres@127.0.0.1:5432/{name}"


# -- parent: one child per run, vendor and table; then the table ------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vendors", default=",".join(VENDORS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per drain")
    parser.add_argument(
        "--body",
        choices=("incr", "noop"),
        default="incr",
        help="the job: one Redis INCR (the issue's job) or nothing",
    )
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
        "--finished-rows",
        type=int,
        default=0,
        metavar="N",
        help="also drain with N finished jobs in the table (0: skip); the "
        "seeded rows are kept in the NAME_finished database between runs",
    )
    parser.add_argument(
        "--celery",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure the Celery reference drain (threads pool, Redis broker) "
        "in each run; default: on if Celery is installed",
    )
    parser.add_argument(
        "--celery-concurrency", default="8", help="Celery threads per process, list"
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
    parser.add_argument("--json", help="write every raw figure to this file")
    parser.add_argument("--child", choices=VENDORS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--table", choices=("empty", "finished"), help=argparse.SUPPRESS
    )
    parser.add_argument("--run", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("runs", "jobs", "single", "bulk", "chunk", "processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.finished_rows < 0:
        parser.error("--finished-rows must be at least 0")
    try:
        args.concurrencies = [int(c) for c in split(args.concurrency)]
        args.celery_concurrencies = [int(c) for c in split(args.celery_concurrency)]
    except ValueError as error:
        parser.error(f"thread counts are comma-separated integers: {error}")
    args.vendor_list = split(args.vendors)
    unknown = set(args.vendor_list) - set(VENDORS)
    if unknown:
        parser.error(
            f"unknown vendor(s) {', '.join(sorted(unknown))}; "
            f"choose from {','.join(VENDORS)}"
        )
    args.only_set = set(split(args.only))
    unknown = args.only_set - {"single", "bulk", "drain", "latency"}
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(sorted(unknown))}")
    return args


def split(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        return child(args)
    if args.seed is not None:
        for vendor in args.vendor_list:
            run_child(vendor, "empty", 1, argv)
        return 0
    celery = want_celery(args)
    finished = args.finished_rows and "drain" in args.only_set
    started = time.monotonic()
    load = os.getloadavg()[0]
    results = {
        v: {"figures": {}, "drain": {}, "finished": {}} for v in args.vendor_list
    }
    celery_runs = {}
    for run in range(1, args.runs + 1):
        for vendor in args.vendor_list:
            merge(results[vendor], run_child(vendor, "empty", run, argv))
            if finished:
                merge(results[vendor], run_child(vendor, "finished", run, argv))
        if celery:
            for c in args.celery_concurrencies:
                celery_runs.setdefault(str(c), []).append(run_celery(args, run, c))
    print_table(args, results, celery_runs)
    print(
        f"\ntotal bench time {time.monotonic() - started:.0f} s; 1-minute load "
        f"average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        f"({os.cpu_count()} CPUs)"
    )
    if args.json:
        raw = {"args": argv, "vendors": results, "celery": celery_runs}
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


def want_celery(args):
    """Whether to run the Celery row; explain how to get it when missing."""
    if args.celery is False or "drain" not in args.only_set:
        return False
    if importlib.util.find_spec("celery") is not None:
        return True
    if args.celery:
        sys.exit(f"--celery: Celery is not installed; {INSTALL_HINT}")
    print(
        f"Celery is not installed, so the table has no Celery reference row: "
        f"{INSTALL_HINT}, or pass --no-celery to skip it quietly.",
        file=sys.stderr,
        flush=True,
    )
    return False


def merge(total, part):
    """Add one child's figures to the vendor's lists of runs."""
    for key in ("settings", "seed"):
        if key in part:
            total[key] = part[key]
    for key, value in part.get("figures", {}).items():
        total["figures"].setdefault(key, []).append(value)
    for kind in ("drain", "finished"):
        for c, result in part.get(kind, {}).items():
            total[kind].setdefault(c, []).append(result)


def run_child(vendor, table, run, argv):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        command = [sys.executable, __file__, *argv, "--child", vendor]
        command += ["--table", table, "--run", str(run), "--out", path]
        code = subprocess.call(command, env=vendor_env(vendor, table), cwd=ROOT)
        if code:
            sys.exit(f"{vendor} ({table} table): benchmark child exited with {code}")
        return json.loads(Path(path).read_text())
    finally:
        Path(path).unlink(missing_ok=True)


def vendor_env(vendor, table):
    name, url = database(vendor, table)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
        BENCH_DB=DB,
        BENCH_INCR_KEY=f"bench:incr:{name}",
    )
    if vendor == "postgresql+redis":
        bgjobs = json.loads(env.get("BENCH_BGJOBS") or "{}")
        bgjobs.setdefault("REDIS_CACHE", "bench")
        env["BENCH_BGJOBS"] = json.dumps(bgjobs)
    return env


def run_celery(args, run, concurrency):
    """One Celery reference drain (``bench/peers/celery_drain.py``)."""
    command = [sys.executable, str(CELERY_DRAIN), "--jobs", str(args.jobs)]
    command += ["--processes", str(args.processes), "--body", args.body]
    command += ["--concurrency", str(concurrency)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.exit(f"celery drain exited with {done.returncode}: {' '.join(command)}")
    result = json.loads(lines[-1])
    say(
        "celery",
        run,
        f"drain C={concurrency}: rows {result['row_rate']:.0f} jobs/s, wall "
        f"{result['wall_rate']:.0f} jobs/s, worker CPU {result['cpu_us']:.0f} us/job",
    )
    return result


def median(values):
    return statistics.median(values) if values else float("nan")


def print_table(args, results, celery_runs):
    print("\n" + "=" * 78)
    print(
        f"median of {args.runs} run(s); job bench.{args.body}; drain: {args.jobs} "
        f"ready jobs, --processes {args.processes}; latency: {args.latency_jobs} "
        f"jobs at {args.rate:g}/s"
    )
    celery = best(celery_runs)
    for vendor, data in results.items():
        print(f"\n{vendor}  ({data.get('settings', '')})")
        if data.get("seed"):
            print(f"  finished rows: {describe_seed(data['seed'])}")
        print(f"  {'figure':<44} {'median':>10}   runs")
        for name, unit, values in rows(data):
            shown = ", ".join(fmt(v, unit) for v in values)
            text = fmt(median(values), unit)
            print(f"  {name + ' (' + unit + ')':<44} {text:>10}   [{shown}]")
        for c, rate in medians(data["drain"]).items():
            notes = []
            if celery:
                notes.append(f"{rate / celery[1]:.2f}x Celery")
            finished = medians(data["finished"]).get(c)
            if finished:
                notes.append(f"with finished rows {finished / rate:.2f}x empty")
            if notes:
                print(f"  drain C={c} rows: {'; '.join(notes)}")
        top = best(data["drain"])
        if top:
            print(f"  best drain: --concurrency {top[0]} ({top[1]:.0f} jobs/s rows)")
    if celery_runs:
        print("\ncelery  (threads pool, Redis broker; bench/peers/celery_drain.py)")
        for c, runs in sorted(celery_runs.items(), key=lambda i: int(i[0])):
            for label, key in (("rows", "row_rate"), ("wall", "wall_rate")):
                values = [r[key] for r in runs]
                shown = ", ".join(fmt(v, "jobs/s") for v in values)
                name = f"drain C={c} {label} (jobs/s)"
                print(f"  {name:<44} {fmt(median(values), 'jobs/s'):>10}   [{shown}]")
    summary(args, results, celery)


def summary(args, results, celery):
    """The issue's table: one line per vendor, and Celery's."""
    head = (
        f"{'':<17}{'single/s':>9}{'bulk/s':>8}{'drain/s':>9}{'C':>4}{'x Celery':>9}"
        f"{'finished/s':>11}{'x empty':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    )
    print(f"\nsummary (medians; drain = best thread count by rows rate)\n{head}")
    for vendor, data in results.items():
        figures = data["figures"]
        top = best(data["drain"])
        cells = [
            num(median(figures.get("single", [])), 9),
            num(median(figures.get("bulk", [])), 8),
            num(top[1] if top else None, 9),
            f"{top[0] if top else '-':>4}",
            ratio(top[1] / celery[1] if top and celery else None, 9),
        ]
        rate = medians(data["finished"]).get(top[0]) if top else None
        cells += [num(rate, 11), ratio(rate / top[1] if rate else None, 8)]
        cells += [
            num(median(figures.get(q, [])), 8, digits=1) for q in ("p50", "p95", "p99")
        ]
        print(f"{vendor:<17}{''.join(cells)}")
    if celery:
        cells = [num(None, 9), num(None, 8), num(celery[1], 9), f"{celery[0]:>4}"]
        print(f"{'celery threads':<17}{''.join(cells)}{ratio(1.0, 9)}")
    if args.finished_rows:
        print(
            f"finished/s: the same drain (same C) with {args.finished_rows:,} "
            f"finished jobs in the table; x empty: its ratio to drain/s"
        )


def num(value, width, digits=0):
    if value is None or value != value:  # None or NaN
        return f"{'-':>{width}}"
    return f"{value:>{width},.{digits}f}"


def ratio(value, width):
    return f"{'-':>{width}}" if value is None else f"{value:>{width - 1}.2f}x"


def fmt(value, unit):
    digits = {"ms": 1, "s": 2}.get(unit, 0)
    return f"{value:.{digits}f}"


def describe_seed(seed):
    return (
        f"{seed['rows']:,} (seeded {seed['seeded_at']}: insert "
        f"{seed['insert_seconds']:.0f} s, vacuum and analyze "
        f"{seed['vacuum_seconds']:.0f} s)"
    )


def rows(data):
    figures = data["figures"]
    order = [
        ("enqueue single", "jobs/s", "single"),
        ("enqueue bulk", "jobs/s", "bulk"),
    ]
    for label, unit, key in order:
        if figures.get(key):
            yield label, unit, figures[key]
    for kind, prefix in (("drain", "drain"), ("finished", "drain, finished rows,")):
        for c in sorted(data[kind], key=int):
            runs = data[kind][c]
            yield f"{prefix} C={c} wall", "jobs/s", [r["wall_rate"] for r in runs]
            yield f"{prefix} C={c} rows", "jobs/s", [r["row_rate"] for r in runs]
            yield f"{prefix} C={c} wall time", "s", [r["wall"] for r in runs]
            yield f"{prefix} C={c} worker CPU", "us/job", [r["cpu_us"] for r in runs]
    for q in ("p50", "p95", "p99"):
        if figures.get(q):
            yield f"latency {q}", "ms", figures[q]


def medians(drains):
    """Median rows rate by thread count."""
    return {
        c: median([r["row_rate"] for r in runs])
        for c, runs in sorted(drains.items(), key=lambda i: int(i[0]))
    }


def best(drains):
    """(thread count, median rows rate) of the best thread count, or None."""
    rates = medians(drains)
    if not rates:
        return None
    c = max(rates, key=rates.get)
    return c, rates[c]


# -- child: one run of one vendor and table -----------------------------------


def child(args):
    # Run as a script, sys.path[0] is bench/; its settings.py and jobs.py
    # must not shadow top-level names.
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path[0] = str(ROOT)
    vendor, table = args.child, args.table
    if table == "empty" and args.run == 1:
        fresh_database(vendor, args.synchronous_commit)
    elif vendor != "sqlite":
        create_database(vendor, table, args.synchronous_commit)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.seed is not None:
        seed(args.seed, args.chunk, args.body)
        analyze()
        url = os.environ["DATABASE_URL"]
        say(vendor, 0, f"seeded {args.seed} jobs; DATABASE_URL={url}")
        Path(args.out).write_text("{}")
        return 0
    label = vendor if table == "empty" else f"{vendor}, finished rows"
    data = {"settings": describe(settings.BGJOBS, args)}
    if table == "finished":
        data["seed"] = ensure_finished(args.finished_rows, label)
        data["finished"] = {}
        for c in args.concurrencies:
            result = bench_drain(args, c, base=data["seed"]["max_id"], label=label)
            data["finished"][str(c)] = result
            say_drain(label, args.run, c, result)
        Path(args.out).write_text(json.dumps(data))
        return 0
    only = args.only_set
    figures = data["figures"] = {}
    if "single" in only:
        add(figures, "single", bench_single(args.single, args.body), label, args.run)
    if "bulk" in only:
        value = bench_bulk(args.bulk, args.chunk, args.body)
        add(figures, "bulk", value, label, args.run)
    if "drain" in only:
        data["drain"] = {}
        for c in args.concurrencies:
            result = bench_drain(args, c)
            data["drain"][str(c)] = result
            say_drain(label, args.run, c, result)
    if "latency" in only:
        for q, value in bench_latency(args).items():
            add(figures, q, value, label, args.run, unit="ms")
    Path(args.out).write_text(json.dumps(data))
    return 0


def say(label, run, text):
    print(f"[{label} run {run}] {text}", flush=True)


def say_drain(label, run, c, result):
    say(
        label,
        run,
        f"drain C={c}: wall {result['wall']:.2f} s ({result['wall_rate']:.0f} "
        f"jobs/s), rows {result['row_rate']:.0f} jobs/s, worker CPU "
        f"{result['cpu_us']:.0f} us/job",
    )


def add(figures, key, value, label, run, unit="jobs/s"):
    figures[key] = value
    say(label, run, f"{key}: {fmt(value, unit)} {unit}")


def describe(bgjobs, args):
    from django_bgjobs.conf import get_settings

    conf = get_settings()
    keys = ("POLL_INTERVAL", "CLAIM_BATCH_MAX", "FLUSH_INTERVAL")
    if args.child != "sqlite":
        keys = ("LISTEN_NOTIFY", "WAKE_POLL_INTERVAL", *keys)
    text = ", ".join(f"{k}={getattr(conf, k)}" for k in keys)
    if bgjobs:
        text += f"; BENCH_BGJOBS={json.dumps(bgjobs)}"
    if args.child != "sqlite" and args.synchronous_commit != "on":
        text += f"; synchronous_commit={args.synchronous_commit}"
    return text


def admin_connection():
    import psycopg

    return psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    )


def fresh_database(vendor, synchronous_commit):
    """Drop and create the bench database (the file, for SQLite)."""
    name, url = database(vendor, "empty")
    if vendor == "sqlite":
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(
            f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}'
        )


def create_database(vendor, table, synchronous_commit):
    """Create the PostgreSQL database of ``table`` if it is missing."""
    name, _ = database(vendor, table)
    with admin_connection() as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(
            f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}'
        )


def reset(base=0):
    """Empty the job tables, but for the seeded finished rows (ids <= base)."""
    from django.db import connection

    tables = ("bgjobs_attempt", "bgjobs_deadletter", "bgjobs_job")
    with connection.cursor() as cursor:
        if base:
            cursor.execute("DELETE FROM bgjobs_attempt")
            cursor.execute("DELETE FROM bgjobs_deadletter")
            cursor.execute("DELETE FROM bgjobs_job WHERE id > %s", [base])
            if connection.vendor == "postgresql":
                # The previous drain's dead rows, so that each drain starts
                # from the same table. INDEX_CLEANUP ON: with so few dead
                # rows among millions a plain VACUUM skips the indexes, and
                # the claim index would keep every drained job's entry.
                cursor.execute("VACUUM (INDEX_CLEANUP ON) bgjobs_job, bgjobs_attempt")
        elif connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
    flush_counter()


def analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE bgjobs_job")
        else:
            # A sample, not a scan of millions of finished rows.
            cursor.execute("PRAGMA analysis_limit = 10000")
            cursor.execute("ANALYZE")


def job_of(body):
    from bench import jobs

    return getattr(jobs, body)


def seed(count, chunk, body):
    job = job_of(body)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        job.enqueue_many([((), {})] * size)


def flush_counter():
    from bench.jobs import COUNTER, redis_client

    redis_client().delete(COUNTER)


def check_counter(expected):
    from bench.jobs import COUNTER, redis_client

    value = int(redis_client().get(COUNTER) or 0)
    if value != expected:
        sys.exit(f"bench.incr counter {COUNTER} is {value}, expected {expected}")


def bench_single(count, body):
    job = job_of(body)
    reset()
    started = time.perf_counter()
    for _ in range(count):
        job.enqueue()
    return count / (time.perf_counter() - started)


def bench_bulk(count, chunk, body):
    reset()
    started = time.perf_counter()
    seed(count, chunk, body)
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


def bench_drain(args, concurrency, base=0, label=""):
    """Seed ready jobs, run ``runworkers --burst`` and time it.

    ``base``: the highest id of the seeded finished rows, which stay.
    """
    from django.db import connection
    from django.db.models import Max, Min

    from django_bgjobs.models import Job

    started = time.perf_counter()
    reset(base)
    if base:
        took = time.perf_counter() - started
        say(label, args.run, f"previous drain deleted and vacuumed in {took:.1f} s")
    seed(args.jobs, args.chunk, args.body)
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
    drained = Job.objects.filter(id__gt=base)
    succeeded = drained.filter(status="succeeded").count()
    if succeeded != args.jobs:
        sys.exit(f"drain left {args.jobs - succeeded} jobs unfinished:\n{done.stderr}")
    if args.body == "incr":
        check_counter(args.jobs)
    span = drained.aggregate(first=Min("started_at"), last=Max("finished_at"))
    busy = (span["last"] - span["first"]).total_seconds()
    return {
        "wall": wall,
        "wall_rate": args.jobs / wall,
        "row_rate": args.jobs / busy,
        "cpu_us": cpu / args.jobs * 1e6,
    }


# -- the finished rows --------------------------------------------------------


def ensure_finished(count, label):
    """Seed ``count`` finished jobs unless the table already holds them.

    Returns the seeding's record (``bench_seed``): rows, highest id, when
    and how long it took.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_seed (rows bigint, max_id bigint, "
            "insert_seconds double precision, vacuum_seconds double precision, "
            "seeded_at varchar(40))"
        )
        cursor.execute(
            "SELECT rows, max_id, insert_seconds, vacuum_seconds, seeded_at "
            "FROM bench_seed"
        )
        found = cursor.fetchone()
        if found and found[0] == count:
            cursor.execute("SELECT 1 FROM bgjobs_job WHERE id = %s", [found[1]])
            if cursor.fetchone():
                keys = ("rows", "max_id", "insert_seconds", "vacuum_seconds")
                return {**dict(zip(keys, found, strict=False)), "seeded_at": found[4]}
    say(label, 0, f"seeding {count:,} finished jobs (kept for the next runs)")
    record = seed_finished(count)
    say(
        label,
        0,
        f"seeded {count:,} finished jobs: insert {record['insert_seconds']:.1f} s, "
        f"vacuum and analyze {record['vacuum_seconds']:.1f} s",
    )
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM bench_seed")
        cursor.execute(
            "INSERT INTO bench_seed VALUES (%s, %s, %s, %s, %s)",
            [
                count,
                record["max_id"],
                record["insert_seconds"],
                record["vacuum_seconds"],
                record["seeded_at"],
            ],
        )
    return record


def seed_finished(count):
    """Insert ``count`` finished jobs in one statement; vacuum and analyze.

    Ids 1..count, finished over the last ``SEED_DAYS`` days in id order; one
    in 20 failed after 3 attempts, the others succeeded at the first; tasks
    and queues cycle through ``SEED_TASKS`` and ``SEED_QUEUES``.
    """
    from django.db import connection
    from django.utils import timezone

    end = timezone.now().replace(microsecond=0)
    start = end - timezone.timedelta(days=SEED_DAYS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE bgjobs_attempt, bgjobs_deadletter, bgjobs_job")
        else:
            for table in ("bgjobs_attempt", "bgjobs_deadletter", "bgjobs_job"):
                cursor.execute(f"DELETE FROM {table}")
        started = time.perf_counter()
        if connection.vendor == "postgresql":
            cursor.execute(PG_SEED, seed_params(count, start, end, json_lists=False))
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('bgjobs_job', 'id'), %s)",
                [count],
            )
        else:
            cursor.execute(SQLITE_SEED, seed_params(count, start, end, json_lists=True))
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM (FREEZE, ANALYZE) bgjobs_job")
        else:
            cursor.execute("PRAGMA analysis_limit = 10000")
            cursor.execute("ANALYZE")
        vacuumed = time.perf_counter() - started
    return {
        "rows": count,
        "max_id": count,
        "insert_seconds": inserted,
        "vacuum_seconds": vacuumed,
        "seeded_at": timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
    }


def seed_params(count, start, end, json_lists):
    """Parameters of the seeding statement; SQLite's lists are JSON text."""
    params = {
        "n": count,
        "start": start,
        "seconds": (end - start).total_seconds(),
        "tasks": list(SEED_TASKS),
        "queues": list(SEED_QUEUES),
    }
    if json_lists:
        params["start"] = start.strftime("%Y-%m-%d %H:%M:%S")
        params["tasks"] = json.dumps(params["tasks"])
        params["queues"] = json.dumps(params["queues"])
    return params


# The columns of bgjobs_job a finished job has; the others keep NULL or ''.
SEED_COLUMNS = (
    "id, task, queue, priority, status, args, kwargs, result, error, key, "
    "active_key, limit_key, run_at, created_at, started_at, finished_at, attempt, "
    "uncharged, max_attempts, timeout, result_ttl, expires_at, worker, "
    "lease_expires_at, cancel_requested_at"
)
PG_SEED = f"""
INSERT INTO bgjobs_job ({SEED_COLUMNS})
SELECT i, (%(tasks)s::text[])[1 + i %% cardinality(%(tasks)s::text[])],
    (%(queues)s::text[])[1 + (i / 7) %% cardinality(%(queues)s::text[])], 0,
    CASE WHEN i %% 20 = 0 THEN 'failed' ELSE 'succeeded' END,
    jsonb_build_array(i %% 100000), '{{}}'::jsonb,
    CASE WHEN i %% 20 = 0 THEN NULL ELSE to_jsonb(i %% 1000) END,
    CASE WHEN i %% 20 = 0
        THEN 'TimeoutError: upstream did not answer within 30 s' ELSE '' END,
    NULL, NULL, NULL,
    f - interval '1 millisecond' * (40 + i %% 900),
    f - interval '1 millisecond' * (40 + i %% 900),
    f - interval '1 millisecond' * (i %% 37),
    f,
    CASE WHEN i %% 20 = 0 THEN 3 ELSE 1 END, 0, 3, NULL, NULL, NULL,
    'web-' || (i %% 4) || ':' || (1000 + i %% 8), NULL, NULL
FROM (
    SELECT i, %(start)s::timestamptz
        + interval '1 second' * (%(seconds)s * i / %(n)s) AS f
    FROM generate_series(1, %(n)s::int) AS i
) AS s
"""
# SQLite has no generate_series (without an extension) and stores datetimes
# as 'YYYY-MM-DD HH:MM:SS.SSS' text in UTC.
SQLITE_SEED = f"""
INSERT INTO bgjobs_job ({SEED_COLUMNS})
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %(n)s),
    t(i, f) AS (
        SELECT i, julianday(%(start)s) + %(seconds)s * i / %(n)s / 86400.0 FROM s
    )
SELECT i,
    json_extract(%(tasks)s, '$[' || (i %% json_array_length(%(tasks)s)) || ']'),
    json_extract(%(queues)s, '$[' || ((i / 7) %% json_array_length(%(queues)s)) || ']'),
    0, CASE WHEN i %% 20 = 0 THEN 'failed' ELSE 'succeeded' END,
    json_array(i %% 100000), '{{}}',
    CASE WHEN i %% 20 = 0 THEN NULL ELSE json(i %% 1000) END,
    CASE WHEN i %% 20 = 0
        THEN 'TimeoutError: upstream did not answer within 30 s' ELSE '' END,
    NULL, NULL, NULL,
    strftime('%%Y-%%m-%%d %%H:%%M:%%f', f - (40 + i %% 900) / 86400000.0),
    strftime('%%Y-%%m-%%d %%H:%%M:%%f', f - (40 + i %% 900) / 86400000.0),
    strftime('%%Y-%%m-%%d %%H:%%M:%%f', f - (i %% 37) / 86400000.0),
    strftime('%%Y-%%m-%%d %%H:%%M:%%f', f),
    CASE WHEN i %% 20 = 0 THEN 3 ELSE 1 END, 0, 3, NULL, NULL, NULL,
    'web-' || (i %% 4) || ':' || (1000 + i %% 8), NULL, NULL
FROM t
"""


def children_cpu():
    """CPU seconds (user + system) of the waited-for worker processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_latency(args):
    """Enqueue at a steady rate to idle workers; percentiles of the wait."""
    from django.db import connection

    from django_bgjobs.models import Job

    job = job_of(args.body)
    reset()
    connection.close()
    # A file, not a pipe: a full pipe would block a worker that logs a lot.
    with tempfile.TemporaryFile(mode="w+") as log:
        workers = spawn_workers(worker_command(args), log)
        try:
            last_warmup = warm_up(args, workers, log)
            interval = 1 / args.rate
            started = time.monotonic()
            ids = []
            for i in range(args.latency_jobs):
                pause = started + i * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                ids.append(job.enqueue().id)
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


def spawn_workers(command, log):
    """Start ``command`` (a ``runworkers``) in a process group of its own,
    stderr to the file ``log`` (a full pipe would block a worker that logs a
    lot); ``stop`` ends it."""
    return subprocess.Popen(
        command,
        env=os.environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )


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
