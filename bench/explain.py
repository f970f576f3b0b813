"""EXPLAIN (ANALYZE, BUFFERS) of the hot paths' real statements, PostgreSQL.

Usage (from the project root)::

    .venv/bin/python bench/explain.py [--rows 10000000] [--reseed]
        [--repeat 3] [--out /tmp/bgjobs-query-plans.md]

The database is ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/bench_explain``), created if missing and
migrated. It is seeded with ``--rows`` finished jobs (a few ``INSERT ...
SELECT ... FROM generate_series`` statements, the job table's secondary
indexes built after the insert), one attempt per run, dead letters for the
failed ones, then 10,000 ready, 1,000 scheduled and 1,000 running jobs. An
existing seed of that size is kept (``--reseed`` forces a new one), and the
active jobs are rewritten at each start.

Each hot path is called through the library's own functions under
``CaptureQueriesContext`` in a transaction that is rolled back; then every
captured statement on the job tables is run again under ``EXPLAIN (ANALYZE,
BUFFERS)``, ``--repeat`` times, each time in a transaction that first replays
the writes before it (so a record sees its claim) and is rolled back. A
statement that runs once per row of a page is explained once.
The plans go to ``--out`` as Markdown: the last run's plan, and the
execution time of every run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/; its settings.py and jobs.py must
# not shadow top-level names, and ``bench.run`` must be importable.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

# The seed's tasks, queues and days (``emails`` gets an age policy,
# ``reports`` a count; see ``retention_settings``).
from bench.run import SEED_DAYS, SEED_QUEUES, SEED_TASKS  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_explain"
#: The ``emails`` queue keeps finished jobs 29 days: those of the seed's
#: first day are past their ``expires_at``, a backlog for the pruner.
EMAILS_AGE = 29 * 86400
#: Dead letters are kept 14 days: about half of the seeded ones are past it.
DEAD_LETTER_TTL = 14 * 86400
READY, SCHEDULED, RUNNING = 10_000, 1_000, 1_000
#: Running jobs belong to these workers; the first ``EXPIRED`` leases ran out.
WORKERS = 4
EXPIRED = 20
CLAIM_BATCH = 16


def retention_settings(rows):
    """The ``BGJOBS`` retention that the seeded table stands for."""
    return {
        "QUEUES": {
            "emails": {
                "remove_on_complete": {"age": EMAILS_AGE},
                "remove_on_fail": {"age": EMAILS_AGE},
            },
            "reports": {"remove_on_complete": {"count": 1000}},
        },
        # The default scope holds about 0.58 * rows succeeded jobs.
        "REMOVE_ON_COMPLETE": {"count": max(rows // 2, 1)},
        "REMOVE_ON_FAIL": {"count": max(rows // 1000, 1)},
        "DEAD_LETTER_TTL": DEAD_LETTER_TTL,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="finished jobs to seed"
    )
    parser.add_argument(
        "--reseed", action="store_true", help="seed even if the table holds --rows"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="EXPLAIN ANALYZE runs per statement"
    )
    parser.add_argument(
        "--out",
        default=str(Path(tempfile.gettempdir()) / "bgjobs-query-plans.md"),
        help="Markdown output (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def setup(rows):
    """Configure Django for the bench settings and the explain database."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    bgjobs = retention_settings(rows)
    bgjobs.update(json.loads(os.environ.get("BENCH_BGJOBS") or "{}"))
    os.environ["BENCH_BGJOBS"] = json.dumps(bgjobs)
    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(f"bench/explain.py needs PostgreSQL; DATABASE_URL is {url}")
    create_database(url)
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    # The admin pages are fetched with the test client (host "testserver").
    setup_test_environment()


def create_database(url):
    import dj_database_url
    import psycopg

    conf = dj_database_url.parse(url)
    params = {
        "host": conf["HOST"] or "127.0.0.1",
        "port": conf["PORT"] or 5432,
        "user": conf["USER"] or "postgres",
        "dbname": "postgres",
        "autocommit": True,
    }
    if conf["PASSWORD"]:
        params["password"] = conf["PASSWORD"]
    with psycopg.connect(**params) as conn:
        name = conf["NAME"]
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{name}"')


def say(text):
    print(text, file=sys.stderr, flush=True)


# -- seeding ------------------------------------------------------------------


FINISHED_COLUMNS = (
    "id, task, queue, priority, status, args, kwargs, result, error, key, "
    "active_key, limit_key, run_at, created_at, started_at, finished_at, attempt, "
    "uncharged, max_attempts, timeout, result_ttl, expires_at, worker, "
    "lease_expires_at, cancel_requested_at"
)
#: Ids 1..n finish in id order over ``SEED_DAYS`` days. One in 50 failed after
#: 3 attempts, one in 50 was cancelled before it ran (no attempt), the others
#: succeeded at the first attempt. Jobs of ``emails`` expire 29 days after they
#: finished, so those of the first day are due for pruning.
PG_SEED_JOBS = f"""
INSERT INTO bgjobs_job ({FINISHED_COLUMNS})
SELECT i, (%(tasks)s::text[])[1 + i %% cardinality(%(tasks)s::text[])], q,
    CASE WHEN i %% 10 = 0 THEN 10 ELSE 0 END,
    CASE i %% 50 WHEN 0 THEN 'failed' WHEN 25 THEN 'cancelled' ELSE 'succeeded' END,
    jsonb_build_array(i %% 100000), '{{}}'::jsonb,
    CASE WHEN i %% 50 IN (0, 25) THEN NULL ELSE to_jsonb(i %% 1000) END,
    CASE i %% 50 WHEN 0 THEN 'TimeoutError: upstream did not answer within 30 s'
        WHEN 25 THEN 'JobCancelled: cancelled by an operator' ELSE '' END,
    NULL, NULL, NULL,
    f - interval '1 millisecond' * (40 + i %% 900),
    f - interval '1 millisecond' * (40 + i %% 900),
    CASE WHEN i %% 50 = 25 THEN NULL ELSE f - interval '1 millisecond' * (i %% 37) END,
    f,
    CASE i %% 50 WHEN 0 THEN 3 WHEN 25 THEN 0 ELSE 1 END, 0, 3, NULL, NULL,
    CASE WHEN q = 'emails' THEN f + interval '1 second' * %(emails_age)s END,
    CASE WHEN i %% 50 = 25 THEN '' ELSE 'web-' || (i %% 4) || ':' || (1000 + i %% 8)
        END,
    NULL, NULL
FROM (
    SELECT i, (%(queues)s::text[])[1 + (i / 7) %% cardinality(%(queues)s::text[])]
        AS q,
        %(start)s::timestamptz + interval '1 second' * (%(seconds)s * i / %(n)s) AS f
    FROM generate_series(1, %(n)s::int) AS i
) AS s
"""
#: One attempt per run of the seeded jobs (the failed ones' last).
PG_SEED_ATTEMPTS = """
INSERT INTO bgjobs_attempt (job_id, number, worker, started_at, finished_at,
    outcome, error_class, error_message, traceback)
SELECT id, attempt, worker, started_at, finished_at,
    CASE WHEN status = 'failed' THEN 'failed' ELSE 'succeeded' END,
    CASE WHEN status = 'failed' THEN 'TimeoutError' ELSE '' END,
    CASE WHEN status = 'failed' THEN 'upstream did not answer within 30 s' ELSE ''
        END,
    ''
FROM bgjobs_job WHERE attempt > 0 ORDER BY id
"""
PG_SEED_DEAD_LETTERS = """
INSERT INTO bgjobs_deadletter (job_id, task, queue, priority, args, kwargs, key,
    reason, error_class, attempts, history, created_at, requeued_at,
    requeued_job_id)
SELECT id, task, queue, priority, args, kwargs, key,
    'attempts exhausted (3): ' || error, 'TimeoutError', 3, '[]'::jsonb,
    finished_at, NULL, NULL
FROM bgjobs_job WHERE status = 'failed' ORDER BY id
"""
#: The unfinished jobs, rewritten at each start: ready (due over the last
#: minute, a tenth at priority 10, one in eight with a single attempt so a
#: failure gives up), scheduled over the next days, running on ``WORKERS``
#: workers whose first ``EXPIRED`` leases ran out.
PG_SEED_ACTIVE = """
INSERT INTO bgjobs_job (task, queue, priority, status, args, kwargs, error,
    run_at, created_at, started_at, attempt, uncharged, max_attempts, worker,
    lease_expires_at)
SELECT CASE WHEN i %% 2 = 0 THEN 'bench.noop' ELSE 'bench.incr' END,
    (%(queues)s::text[])[1 + i %% cardinality(%(queues)s::text[])],
    CASE WHEN i %% 10 = 0 THEN 10 ELSE 0 END, 'ready', '[]'::jsonb, '{}'::jsonb, '',
    %(now)s::timestamptz - interval '1 millisecond' * (i * 6),
    %(now)s::timestamptz - interval '1 millisecond' * (i * 6),
    NULL::timestamptz, 0, 0, CASE WHEN i %% 8 = 0 THEN 1 ELSE 3 END, '',
    NULL::timestamptz
FROM generate_series(1, %(ready)s) AS i
UNION ALL
SELECT 'bench.noop', (%(queues)s::text[])[1 + i %% cardinality(%(queues)s::text[])],
    0, 'scheduled', '[]'::jsonb, '{}'::jsonb, '',
    %(now)s::timestamptz + interval '1 minute' * i, %(now)s, NULL, 0, 0, 3, '', NULL
FROM generate_series(1, %(scheduled)s) AS i
UNION ALL
SELECT 'bench.noop', (%(queues)s::text[])[1 + i %% cardinality(%(queues)s::text[])],
    0, 'running', '[]'::jsonb, '{}'::jsonb, '',
    %(now)s::timestamptz - interval '1 minute',
    %(now)s::timestamptz - interval '1 minute',
    %(now)s::timestamptz - interval '1 second' * (i %% 50), 1, 0,
    CASE WHEN i %% 2 = 0 THEN 1 ELSE 3 END,
    'explain-' || (i %% %(workers)s) || ':' || (2000 + i %% %(workers)s),
    CASE WHEN i <= %(expired)s THEN %(now)s::timestamptz - interval '5 seconds'
        ELSE %(now)s::timestamptz + interval '25 seconds' END
FROM generate_series(1, %(running)s) AS i
"""


def finished_rows(cursor):
    """How many jobs the table holds (once the active ones are deleted)."""
    cursor.execute("SELECT count(*) FROM bgjobs_job")
    return cursor.fetchone()[0]


def seed(rows, reseed):
    """Seed ``rows`` finished jobs unless they are there; then the active
    jobs. Return the seeding figures."""
    from django.db import connection
    from django.utils import timezone

    from django_bgjobs.status import UNFINISHED

    figures = {}
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET synchronous_commit = off")
        # Active jobs of an earlier start go first: ids above the seed.
        cursor.execute(
            "DELETE FROM bgjobs_job WHERE status = ANY(%s)", [list(UNFINISHED)]
        )
        have = finished_rows(cursor)
        if have == rows and not reseed:
            say(f"the table holds {rows:,} finished jobs: seeding skipped")
            figures["seed"] = f"Kept the existing seed of {rows:,} finished jobs"
        else:
            figures.update(seed_finished(cursor, rows, timezone.now()))
        started = time.perf_counter()
        now = timezone.now()
        cursor.execute(
            PG_SEED_ACTIVE,
            {
                "now": now,
                "queues": list(dict.fromkeys(SEED_QUEUES)),
                "ready": READY,
                "scheduled": SCHEDULED,
                "running": RUNNING,
                "workers": WORKERS,
                "expired": EXPIRED,
            },
        )
        cursor.execute("TRUNCATE bgjobs_worker, bgjobs_lease")
        cursor.execute("VACUUM (ANALYZE) bgjobs_job")
        cursor.execute("VACUUM (ANALYZE) bgjobs_attempt")
        cursor.execute("VACUUM (ANALYZE) bgjobs_deadletter")
        figures["active_seconds"] = time.perf_counter() - started
    say(
        f"active jobs: {READY:,} ready, {SCHEDULED:,} scheduled, {RUNNING:,} "
        f"running, vacuum and analyze: {figures['active_seconds']:.1f} s"
    )
    return figures


def seed_finished(cursor, rows, end):
    """Insert ``rows`` finished jobs, their attempts and dead letters."""
    end = end.replace(microsecond=0)
    start = end - dt.timedelta(days=SEED_DAYS)
    say(f"seeding {rows:,} finished jobs ...")
    cursor.execute("TRUNCATE bgjobs_attempt, bgjobs_deadletter, bgjobs_job")
    # Build the secondary indexes once, after the insert, not row by row.
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
        "FROM pg_index i WHERE i.indrelid = 'bgjobs_job'::regclass "
        "AND NOT i.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conindid = i.indexrelid)"
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    figures = {}
    timings = (
        ("jobs", PG_SEED_JOBS),
        ("attempts", PG_SEED_ATTEMPTS),
        ("dead letters", PG_SEED_DEAD_LETTERS),
    )
    params = {
        "n": rows,
        "start": start,
        "seconds": (end - start).total_seconds(),
        "tasks": list(SEED_TASKS),
        "queues": list(SEED_QUEUES),
        "emails_age": EMAILS_AGE,
    }
    for label, sql in timings:
        started = time.perf_counter()
        cursor.execute(sql, params if label == "jobs" else None)
        figures[f"insert {label}"] = time.perf_counter() - started
        say(f"  insert {label}: {figures[f'insert {label}']:.1f} s")
        if label == "jobs":
            started = time.perf_counter()
            for _, definition in indexes:
                cursor.execute(definition)
            figures["job indexes"] = time.perf_counter() - started
            say(f"  {len(indexes)} job indexes: {figures['job indexes']:.1f} s")
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence('bgjobs_job', 'id'), %s)", [rows]
    )
    started = time.perf_counter()
    cursor.execute("VACUUM (FREEZE, ANALYZE) bgjobs_job, bgjobs_attempt")
    figures["vacuum"] = time.perf_counter() - started
    say(f"  vacuum (freeze, analyze): {figures['vacuum']:.1f} s")
    figures["total"] = sum(figures.values())
    figures["seed"] = (
        f"Seeded {rows:,} finished jobs in {figures['total']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in figures.items() if k != "total")
        + ")"
    )
    say(figures["seed"])
    return figures


# -- the hot paths ---------------------------------------------------------


def scenarios(rows):
    """(title, description, callable) of each hot path; every callable runs
    the library's own code."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from django_bgjobs.broker import get_broker
    from django_bgjobs.broker.pruning import Cuts, _prune_scope, prune_dead_letters
    from django_bgjobs.conf import get_settings
    from django_bgjobs.registry import count_scopes
    from django_bgjobs.services import queries
    from django_bgjobs.worker.executor import Outcome, settle
    from django_bgjobs.worker.maintenance import Maintenance

    broker = get_broker()
    conf = get_settings()
    worker = "explain-1:2001"

    def claim():
        broker.claim(None, CLAIM_BATCH, "explain-9:9000", timezone.now(), 30.0)

    def claim_queues():
        now = timezone.now()
        broker.claim(["emails", "low"], CLAIM_BATCH, "explain-9:9000", now, 30.0)

    def record():
        now = timezone.now()
        jobs = broker.claim(None, CLAIM_BATCH, "explain-9:9000", now, 30.0)
        records = []
        for job in jobs:
            failed = job.max_attempts == 1
            error = RuntimeError("upstream answered 503") if failed else None
            records.append(settle(job, Outcome(value=None, error=error)))
        broker.record(records)

    def heartbeat():
        now = timezone.now()
        broker.heartbeat(worker, now, conf.LEASE_SECONDS)
        broker.touch_worker(worker, now)
        broker.acquire_lease("maintenance", worker, now, conf.LEASE_SECONDS)
        broker.mark_lost_workers(now, conf.LEASE_SECONDS)

    def reap():
        Maintenance(worker, broker.using).reap(broker)

    def prune_expired():
        broker.prune(timezone.now(), conf.PRUNE_BATCH)

    def prune_counts():
        # Nothing expired yet: Broker.prune goes on to the counts.
        broker.prune(timezone.now() - dt.timedelta(days=SEED_DAYS), conf.PRUNE_BATCH)

    def prune_scopes():
        for scope in count_scopes():
            _prune_scope(broker, scope, conf.PRUNE_BATCH, Cuts(0.0))

    def dead_letters():
        prune_dead_letters(broker, timezone.now(), DEAD_LETTER_TTL, conf.PRUNE_BATCH)

    def overview():
        queries.queue_overview()

    def admin(path):
        def view():
            user = get_user_model().objects.create_superuser(
                "explain", "explain@example.com", "explain"
            )
            client = Client()
            client.force_login(user)
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")

        return view

    batch = conf.PRUNE_BATCH
    return [
        (
            "Claim",
            f"`get_broker().claim(None, {CLAIM_BATCH}, ...)`: the next "
            f"{CLAIM_BATCH} due jobs of every queue.",
            claim,
        ),
        (
            "Claim, two queues",
            f"`get_broker().claim(['emails', 'low'], {CLAIM_BATCH}, ...)`.",
            claim_queues,
        ),
        (
            "Record outcomes",
            f"A claim of {CLAIM_BATCH} jobs, then `get_broker().record()` of "
            "their outcomes (`worker.executor.settle`): the jobs with one "
            "attempt fail and give up (dead letters), the others succeed.",
            record,
        ),
        (
            "Heartbeat",
            f"`heartbeat()` of a worker with {RUNNING // WORKERS} running jobs, "
            "`touch_worker()`, `acquire_lease('maintenance')` and "
            "`mark_lost_workers()`: what `Maintenance._beat` runs before it "
            "reaps and prunes.",
            heartbeat,
        ),
        (
            "Reaper",
            f"`Maintenance.reap()`: {EXPIRED} running jobs whose lease ran out "
            "(`Broker.expired()`), recorded as lost; those with no attempt "
            "left give up.",
            reap,
        ),
        (
            "Prune expired",
            f"`Broker.prune(now, {batch})`: a batch of finished jobs past their "
            "`expires_at` (the `emails` queue's age policy).",
            prune_expired,
        ),
        (
            "Prune counts",
            f"`Broker.prune(now - {SEED_DAYS} days, {batch})`: nothing has "
            "expired at that time, so it goes on to `prune_counts()`, scope "
            "after scope until the batch is full.",
            prune_counts,
        ),
        (
            "Prune counts, every scope",
            f"`broker.pruning._prune_scope()` of each count scope in turn, "
            f"a batch of {batch} each: `reports` keeps 1,000 succeeded jobs, "
            f"the default scope {max(rows // 2, 1):,} succeeded and "
            f"{max(rows // 1000, 1):,} failed or cancelled.",
            prune_scopes,
        ),
        (
            "Prune dead letters",
            f"`prune_dead_letters(broker, now, {DEAD_LETTER_TTL // 86400} days, "
            f"{batch})`.",
            dead_letters,
        ),
        (
            "Queue overview",
            "`services.queries.queue_overview()`: the admin's queues page and "
            "`manage.py bgjobs queues`.",
            overview,
        ),
        (
            "Admin job list",
            "`GET /admin/django_bgjobs/job/` as a superuser: the changelist "
            "page with its filters.",
            admin("/admin/django_bgjobs/job/"),
        ),
        (
            "Admin job list, filtered",
            "`GET /admin/django_bgjobs/job/?status=failed&queue=emails`.",
            admin("/admin/django_bgjobs/job/?status=failed&queue=emails"),
        ),
        (
            "Admin queues page",
            "`GET /admin/django_bgjobs/queuestate/`.",
            admin("/admin/django_bgjobs/queuestate/"),
        ),
    ]


#: Tables whose statements are explained; the admin's session and user
#: queries are left out.
TABLES = ("bgjobs_job", "bgjobs_attempt", "bgjobs_deadletter", "bgjobs_queue")


class Rollback(Exception):
    pass


@contextlib.contextmanager
def rolled_back():
    """A transaction that is always rolled back."""
    from django.db import transaction

    with contextlib.suppress(Rollback), transaction.atomic():
        yield
        raise Rollback


def capture(call):
    """Run ``call`` in a rolled-back transaction; return its statements."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with rolled_back(), CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries]


def replayable(sql):
    head = sql.lstrip().split(None, 1)[0].upper()
    return head in ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")


def writes(sql):
    """True for a statement that changes rows: the later ones must see it."""
    import re

    return replayable(sql) and bool(
        re.search(
            r"^\s*(UPDATE|INSERT|DELETE)\b|\b(UPDATE|INSERT INTO|DELETE FROM) ", sql
        )
    )


def explained(sql):
    return replayable(sql) and "pg_notify" not in sql and any(t in sql for t in TABLES)


def distinct(statements):
    """Indexes of the statements to explain, one per shape (the same text
    but for numbers, such as a query per row of a page), and how many more
    times each shape ran."""
    import re

    first = {}
    repeats = {}
    for index, sql in enumerate(statements):
        if not explained(sql):
            continue
        shape = re.sub(r"\b\d+\b", "N", sql)
        if shape in first:
            repeats[first[shape]] += 1
        else:
            first[shape] = index
            repeats[index] = 0
    return list(first.values()), repeats


def explain(statements, index, repeat):
    """EXPLAIN (ANALYZE, BUFFERS) statement ``index``, ``repeat`` times,
    after replaying the writes before it; return (last plan, times)."""
    from django.db import connection

    times = []
    plan = ""
    for _ in range(repeat):
        with rolled_back(), connection.cursor() as cursor:
            for sql in statements[:index]:
                if writes(sql):
                    cursor.execute(sql.replace("%", "%%"))
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + statements[index].replace("%", "%%")
            )
            lines = [row[0] for row in cursor.fetchall()]
        plan = "\n".join(lines)
        times.append(execution_ms(lines))
    return plan, times


def execution_ms(lines):
    for line in reversed(lines):
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return float("nan")


def shorten(sql, limit=1500):
    """``sql`` with long lists of literals cut, for the report."""
    import re

    sql = re.sub(
        r"IN \(((?:[^()]|\([^()]*\))*)\)",
        lambda m: (
            m.group(0) if len(m.group(1)) < 120 else "IN (" + cut(m.group(1)) + ")"
        ),
        sql,
    )
    sql = re.sub(
        r"'(\[\{.{200,}?\}\])'",
        lambda m: "'" + m.group(1)[:160] + " ... (JSON batch)'",
        sql,
    )
    return sql if len(sql) <= limit else sql[:limit] + " ..."


def cut(values):
    items = values.split(", ")
    return ", ".join(items[:3]) + f", ... ({len(items)} values)"


def main(argv=None):
    args = parse_args(argv)
    setup(args.rows)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    figures = seed(args.rows, args.reseed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
        cursor.execute(
            "SELECT pg_size_pretty(pg_table_size('bgjobs_job')), "
            "pg_size_pretty(pg_indexes_size('bgjobs_job'))"
        )
        table_size, index_size = cursor.fetchone()
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
    out = [
        f"# Query plans at {args.rows:,} finished rows\n",
        f"Written by `bench/explain.py` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. {version.split(',')[0]}, "
        f"shared_buffers {buffers}; `bgjobs_job`: table {table_size}, indexes "
        f"{index_size}; {READY:,} ready, {SCHEDULED:,} scheduled and "
        f"{RUNNING:,} running jobs besides the finished ones. "
        f"{figures['seed']}.\n",
        f"Each statement ran {args.repeat} times under `EXPLAIN (ANALYZE, "
        "BUFFERS)`, in a transaction rolled back; the plan is the last run's.\n",
    ]
    summary = []
    for title, description, call in scenarios(args.rows):
        statements = capture(call)
        out.append(f"## {title}\n\n{description}\n")
        shown, repeats = distinct(statements)
        for number, index in enumerate(shown, 1):
            plan, times = explain(statements, index, args.repeat)
            runs = ", ".join(f"{t:.3f}" for t in times)
            again = repeats[index]
            more = (
                f"\nThe path ran this statement {again + 1} times, with other values.\n"
                if again
                else ""
            )
            out.append(
                f"### {title} {number}/{len(shown)}: {times[-1]:.3f} ms "
                f"(runs: {runs} ms)\n{more}\n```sql\n{shorten(statements[index])}\n```\n\n"
                f"```\n{plan}\n```\n"
            )
            summary.append((f"{title} {number}", times))
            say(f"{title} {number}/{len(shown)}: {runs} ms")
    out.append("## Summary\n\n| statement | execution (ms), each run |\n|---|---|")
    for name, times in summary:
        out.append(f"| {name} | {', '.join(f'{t:.3f}' for t in times)} |")
    Path(args.out).write_text("\n".join(out) + "\n")
    say(f"plans written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
