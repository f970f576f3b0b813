"""``manage.py runworkers``: parse the flags, hand them to the supervisor."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run background job workers: a supervisor and its worker processes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--processes", type=int, default=os.cpu_count() or 1,
            help="Worker processes (default: the CPU count).",
        )  # fmt: skip
        parser.add_argument(
            "--concurrency", type=int, default=8,
            help="Threads per process (default: 8).",
        )  # fmt: skip
        parser.add_argument(
            "--async-concurrency", type=int, default=None, metavar="N",
            help="Coroutine jobs per process, run at once on its event loop "
            "(default: BGJOBS['ASYNC_CONCURRENCY'], 100).",
        )  # fmt: skip
        parser.add_argument(
            "--queues", default="",
            help="Comma-separated queues to run (default: all).",
        )  # fmt: skip
        parser.add_argument(
            "--burst", action="store_true",
            help="Exit once no job is ready or due within BURST_HORIZON seconds.",
        )  # fmt: skip
        parser.add_argument(
            "--grace", type=float, default=30.0,
            help="Seconds running jobs get to finish on SIGTERM (default: 30).",
        )  # fmt: skip
        parser.add_argument(
            "--max-jobs-per-process", type=int, default=None, metavar="N",
            help="Recycle a worker process after it has run N jobs.",
        )  # fmt: skip
        parser.add_argument(
            "--max-memory-per-process", type=float, default=None, metavar="MB",
            help="Recycle a worker process whose resident memory exceeds MB MiB.",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        from django_bgjobs.conf import QUEUE_NAME, get_settings
        from django_bgjobs.worker.supervisor import SupervisorOptions, run

        queues = [q.strip() for q in options["queues"].split(",") if q.strip()]
        for name in queues:
            if not QUEUE_NAME.fullmatch(name):
                raise CommandError(f"--queues: invalid queue name {name!r}.")
        if options["processes"] < 1 or options["concurrency"] < 1:
            raise CommandError("--processes and --concurrency must be at least 1.")
        async_concurrency = options["async_concurrency"]
        if async_concurrency is None:
            async_concurrency = get_settings().ASYNC_CONCURRENCY
        if async_concurrency < 1:
            raise CommandError("--async-concurrency must be at least 1.")
        if options["grace"] < 0:
            raise CommandError("--grace must be >= 0.")
        max_jobs = options["max_jobs_per_process"]
        if max_jobs is not None and max_jobs < 1:
            raise CommandError("--max-jobs-per-process must be at least 1.")
        max_memory = options["max_memory_per_process"]
        if max_memory is not None and not max_memory > 0:
            raise CommandError("--max-memory-per-process must be a number of MB > 0.")
        code = run(
            SupervisorOptions(
                processes=options["processes"],
                concurrency=options["concurrency"],
                async_concurrency=async_concurrency,
                queues=queues or None,
                burst=options["burst"],
                grace=options["grace"],
                max_jobs=max_jobs,
                max_memory_mb=max_memory,
            )
        )
        if code:
            raise SystemExit(code)
