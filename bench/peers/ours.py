"""Our own drain for the peer table: ``bench/run.py`` in a database of its own.

Usage (from the project root)::

    .venv/bin/python -m bench.peers.ours --vendors postgresql --only drain \\
        --runs 1 --concurrency 16,32

Takes the flags of ``bench/run.py`` and runs it unchanged, except that the
PostgreSQL database is ``$BENCH_PEERS_DB`` (default ``bench_peers``), so a
peer run never drops the ``bench`` database of a ``bench/run.py`` in
progress. Prints ``bench/run.py``'s output, then one JSON line of its raw
figures per vendor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import run

DB = os.environ.get("BENCH_PEERS_DB", "bench_peers")
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
RESULTS = {}


def fresh_database(vendor, synchronous_commit):
    """Drop and create the peer database: ``run.fresh_database`` for ``DB``."""
    if vendor != "postgresql":
        run_fresh_database(vendor, synchronous_commit)
        return
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
        conn.execute(
            f'ALTER DATABASE "{DB}" SET synchronous_commit = {synchronous_commit}'
        )


def run_child(vendor, argv):
    """``run.run_child``, with this module as the child so the patches hold."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        command = [sys.executable, "-m", "bench.peers.ours", *argv]
        command += ["--child", vendor, "--out", path]
        code = subprocess.call(command, env=run.vendor_env(vendor), cwd=run.ROOT)
        if code:
            sys.exit(f"{vendor}: benchmark child exited with {code}")
        RESULTS[vendor] = json.loads(Path(path).read_text())
        return RESULTS[vendor]
    finally:
        Path(path).unlink(missing_ok=True)


run_fresh_database = run.fresh_database


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    run.URLS["postgresql"] = run.PG_BENCH_URL = URL
    run.fresh_database = fresh_database
    run.run_child = run_child
    code = run.main(argv)
    args = run.parse_args(argv)
    for vendor, data in RESULTS.items():
        result = {
            "peer": "ours",
            "vendor": vendor,
            "body": "noop",
            "jobs": args.jobs,
            "processes": args.processes,
            "settings": data["settings"],
            "drain": data["drain"],
        }
        print(json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
