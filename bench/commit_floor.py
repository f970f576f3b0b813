"""Single enqueues against the disk's commit floor, measured in one run.

Usage (from the project root)::

    .venv/bin/python bench/commit_floor.py [--jobs 2000] [--rounds 5]

A single ``enqueue()`` outside a transaction is one INSERT and one COMMIT,
and PostgreSQL's COMMIT waits for the WAL to reach the disk: no code of ours
can make it faster than the machine's flush. Each round times, one after
the other on the same PostgreSQL database:

- ``floor``: psycopg alone, ``INSERT INTO`` a one-column table and commit,
  per row: the disk's flush plus a round trip;
- ``raw job``: psycopg alone, the same INSERT of a ``bgjobs_job`` row that
  ``enqueue()`` sends (its indexes included), and commit;
- ``enqueue``: ``bench.incr.enqueue()``: our whole path (checks, the
  prepared INSERT, Django's autocommit, the wake-up).

It prints each round, then the medians and the ratios ``enqueue / floor``
and ``enqueue / raw job``, which hold on a noisy machine where the absolute
rates do not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="rows per figure")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ.setdefault("BENCH_DB", "bench_floor")
    name = os.environ["BENCH_DB"]
    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{name}")
    sys.path.insert(0, str(ROOT))
    create_database(name)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("commit_floor.py measures PostgreSQL's commit; DATABASE_URL is not")
    call_command("migrate", verbosity=0)

    from bench.jobs import incr

    figures: dict[str, list[float]] = {"floor": [], "raw job": [], "enqueue": []}
    for round_ in range(1, args.rounds + 1):
        reset()
        figures["floor"].append(floor(args.jobs))
        figures["raw job"].append(raw_job(args.jobs))
        started = time.perf_counter()
        for _ in range(args.jobs):
            incr.enqueue()
        figures["enqueue"].append(args.jobs / (time.perf_counter() - started))
        print(
            f"round {round_}: "
            + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in figures.items())
        )
    medians = {k: statistics.median(v) for k, v in figures.items()}
    ratios = [e / f for e, f in zip(figures["enqueue"], figures["floor"], strict=True)]
    raw = [e / r for e, r in zip(figures["enqueue"], figures["raw job"], strict=True)]
    print(
        "medians: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in medians.items()),
        f"\nenqueue / floor: {statistics.median(ratios):.2f}x "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f}); "
        f"enqueue / raw job: {statistics.median(raw):.2f}x",
    )


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
    ) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not found.fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bgjobs_attempt, bgjobs_deadletter, bgjobs_job")
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial)")
        cursor.execute("TRUNCATE bench_floor")


def _psycopg() -> object:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=False)


def floor(count: int) -> float:
    with _psycopg() as conn:  # type: ignore[attr-defined]
        started = time.perf_counter()
        for _ in range(count):
            conn.execute("INSERT INTO bench_floor DEFAULT VALUES")
            conn.commit()
        return count / (time.perf_counter() - started)


def raw_job(count: int) -> float:
    from django.db import connection
    from django.utils import timezone

    from bench.jobs import incr
    from django_bgjobs.broker.inserts import _statement
    from django_bgjobs.enqueue import build_job

    sql, fields, _ = _statement("default")
    job = build_job(incr, (), {}, timezone.now())
    params = [
        field.get_db_prep_save(getattr(job, field.attname), connection)
        for field in fields
    ]
    with _psycopg() as conn:  # type: ignore[attr-defined]
        started = time.perf_counter()
        for _ in range(count):
            conn.execute(sql, params)
            conn.commit()
        return count / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
