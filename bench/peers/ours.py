"""Our own drain for the peer table: ``bench/run.py`` in a database of its own.

Usage (from the project root)::

    .venv/bin/python -m bench.peers.ours --vendors postgresql --only drain \\
        --runs 1 --body incr --concurrency 16,32

Takes the flags of ``bench/run.py`` and runs it unchanged (without its
Celery row, which ``run_peers.py`` measures itself), except that its
databases are named ``$BENCH_PEERS_DB`` (default ``bench_peers``), so a peer
run never drops the ``bench`` database of a ``bench/run.py`` in progress.
Prints ``bench/run.py``'s output, then one JSON line of its raw figures per
vendor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DB = os.environ.get("BENCH_PEERS_DB", "bench_peers")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    try:
        command = [sys.executable, str(ROOT / "bench" / "run.py"), *argv]
        command += ["--no-celery", "--json", str(path)]
        env = dict(os.environ, BENCH_DB=DB, PYTHONPATH=str(ROOT))
        code = subprocess.call(command, cwd=ROOT, env=env)
        if code:
            return code
        raw = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    sys.path.insert(0, str(ROOT))
    from bench.run import parse_args

    args = parse_args(argv)
    for vendor, data in raw["vendors"].items():
        result = {
            "peer": "ours",
            "vendor": vendor,
            "body": args.body,
            "jobs": args.jobs,
            "processes": args.processes,
            "settings": data.get("settings", ""),
            "drain": data["drain"],
        }
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
