"""Run the peer reference drains (Celery, BullMQ) beside our own, interleaved.

Usage (from the project root)::

    .venv/bin/python bench/peers/run_peers.py [--runs 3] [--jobs 10000]
        [--bodies noop,incr] [--peers celery,bullmq,ours]

Installs what is missing first: the ``bench`` extra (Celery) into the
running interpreter's environment, and BullMQ with ``npm ci`` in
``bench/peers/bullmq``.
Each run runs every peer, body and thread count once, in that order; the
table at the end shows medians with the raw runs beside them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BULLMQ = ROOT / "bench" / "peers" / "bullmq"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--bodies", default="noop,incr", help="noop,incr")
    parser.add_argument("--peers", default="celery,bullmq,ours")
    parser.add_argument("--celery-concurrency", default="8", help="threads, list")
    parser.add_argument("--bullmq-concurrency", default="8", help="list")
    parser.add_argument(
        "--ours-concurrency", default="16,32", help="bench/run.py --concurrency"
    )
    parser.add_argument("--ours-vendor", default="postgresql")
    parser.add_argument("--out", help="write every raw result to this JSON file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    peers = split(args.peers)
    install(peers)
    started = time.monotonic()
    load = os.getloadavg()[0]
    results = {}
    for run in range(1, args.runs + 1):
        for command, label in plan(args, peers):
            print(f"\n== run {run}: {label}", file=sys.stderr, flush=True)
            for key, row in rows(measure(command)):
                results.setdefault(key, []).append(row)
    print_table(args, results)
    print(
        f"\ntotal {time.monotonic() - started:.0f} s; 1-minute load average "
        f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        f"({os.cpu_count()} CPUs)"
    )
    if args.out:
        raw = [{"row": list(k), "runs": v} for k, v in results.items()]
        Path(args.out).write_text(json.dumps(raw, indent=1))
    return 0


def split(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def install(peers):
    """Install Celery (the ``bench`` extra) and BullMQ if they are missing."""
    if "celery" in peers and importlib.util.find_spec("celery") is None:
        pip = [sys.executable, "-m", "pip", "install", "-e", ".[bench]"]
        subprocess.run(pip, cwd=ROOT, check=True)
    if "bullmq" in peers and not (BULLMQ / "node_modules" / "bullmq").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("npm not found: BullMQ needs Node 18+ and npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BULLMQ, check=True)


def plan(args, peers):
    """Yield (command, label) for one run: each peer, body and thread count."""
    common = ["--jobs", str(args.jobs), "--processes", str(args.processes)]
    for body in split(args.bodies):
        if "celery" in peers:
            for c in split(args.celery_concurrency):
                script = str(ROOT / "bench" / "peers" / "celery_drain.py")
                command = [sys.executable, script, *common, "--body", body]
                yield [*command, "--concurrency", c], f"celery {body} C={c}"
        if "bullmq" in peers:
            for c in split(args.bullmq_concurrency):
                command = ["node", str(BULLMQ / "drain.mjs"), *common]
                command += ["--body", body, "--concurrency", c]
                yield command, f"bullmq {body} C={c}"
        if "ours" in peers:
            command = [sys.executable, "-m", "bench.peers.ours", *common]
            command += ["--vendors", args.ours_vendor, "--only", "drain"]
            command += ["--runs", "1", "--body", body]
            command += ["--concurrency", args.ours_concurrency]
            label = f"ours {args.ours_vendor} {body} C={args.ours_concurrency}"
            yield command, label


def measure(command):
    """Run one measurement; echo its output and return its last JSON line."""
    cwd = BULLMQ if command[0] == "node" else ROOT
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True
    ) as process:
        last = None
        for line in process.stdout:
            if line.startswith("{"):
                last = json.loads(line)
            else:
                print(f"   {line.rstrip()}", file=sys.stderr)
    if process.returncode or last is None:
        sys.exit(f"{' '.join(command)} exited with {process.returncode}")
    return last


def rows(result):
    """Yield (key, figures) rows; ours gives one per thread count."""
    if result["peer"] != "ours":
        key = (result["peer"], result["body"], result["concurrency"])
        yield key, result
        return
    for c, runs in result["drain"].items():
        for figures in runs:
            key = (f"ours {result['vendor']}", result["body"], int(c))
            yield key, figures


def median(values):
    return statistics.median(values) if values else float("nan")


def print_table(args, results):
    print("\n" + "=" * 78)
    print(
        f"median of {args.runs} run(s); {args.jobs} ready jobs, "
        f"{args.processes} worker processes; rate = jobs / (last end - first "
        f"start), wall includes start-up"
    )
    reference = {}
    for (peer, body, _c), runs in results.items():
        rate = median([r["row_rate"] for r in runs])
        if peer == "celery":
            reference[body] = max(reference.get(body, 0), rate)
    head = f"{'peer':<20}{'body':<6}{'C':>4}{'rate':>8}{'x celery':>10}"
    print(f"\n{head}{'wall':>8}{'cpu us':>8}   runs (rate)")
    for (peer, body, c), runs in sorted(results.items(), key=lambda i: i[0]):
        rate = median([r["row_rate"] for r in runs])
        wall = median([r["wall_rate"] for r in runs])
        cpu = median([r["cpu_us"] for r in runs])
        ratio = rate / reference[body] if reference.get(body) else float("nan")
        raw = ", ".join(f"{r['row_rate']:.0f}" for r in runs)
        print(
            f"{peer:<20}{body:<6}{c:>4}{rate:>8.0f}{ratio:>10.2f}{wall:>8.0f}"
            f"{cpu:>8.0f}   [{raw}]"
        )


if __name__ == "__main__":
    sys.exit(main())
