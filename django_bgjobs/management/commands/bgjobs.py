"""``manage.py bgjobs``: pause and resume queues, list them, list schedules
and run one now, through ``services`` (the same operations as the
admin's)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

#: The exit status for a bad queue name (as argparse uses for bad usage).
EXIT_USAGE = 2
#: Count columns: every unfinished job; finished jobs of the last 24 hours
#: (``services.queries.FINISHED_WINDOW``, named in their headers).
COUNTS = (
    ("SCHEDULED", "scheduled"),
    ("READY", "ready"),
    ("WAITING", "waiting_children"),
    ("RUNNING", "running"),
    ("SUCCEEDED", "succeeded"),
    ("FAILED", "failed"),
    ("CANCELLED", "cancelled"),
)
FINISHED_COLUMNS = ("succeeded", "failed", "cancelled")


class Command(BaseCommand):
    help = "Pause, resume or list job queues; list schedules or run one now."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(
            dest="subcommand",
            required=True,
            metavar="{pause,resume,queues,schedules,trigger}",
        )
        pause = commands.add_parser(
            "pause", help="Stop every worker from claiming jobs of QUEUE."
        )
        pause.add_argument("queue", nargs="+", metavar="QUEUE")
        pause.add_argument(
            "--by",
            default="",
            metavar="TEXT",
            help="Who pauses, shown with the paused state.",
        )
        resume = commands.add_parser("resume", help="Let workers claim again.")
        resume.add_argument("queue", nargs="+", metavar="QUEUE")
        commands.add_parser(
            "queues", help="List queues, their state, job counts and limits."
        )
        commands.add_parser(
            "schedules", help="List schedules and their next fire times."
        )
        run = commands.add_parser(
            "trigger", help="Have the next tick enqueue one job of NAME now."
        )
        run.add_argument("name", nargs="+", metavar="NAME")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_bgjobs.exceptions import InvalidJob
        from django_bgjobs.services.queries import queue_overview
        from django_bgjobs.services.queues import pause_queues, resume_queues

        subcommand = options["subcommand"]
        if subcommand == "queues":
            self.stdout.write(table(queue_overview()))
            return
        if subcommand in ("schedules", "trigger"):
            self._schedules(subcommand, options.get("name", []))
            return
        names = options["queue"]
        try:
            if subcommand == "pause":
                result = pause_queues(names, by=options["by"])
            else:
                result = resume_queues(names)
        except InvalidJob as error:
            raise CommandError(str(error), returncode=EXIT_USAGE) from error
        done = "paused" if subcommand == "pause" else "resumed"
        already = "already paused" if subcommand == "pause" else "not paused"
        self.stdout.write(
            f"{result.changed} queue(s) {done}, {result.skipped} {already}: "
            + ", ".join(names)
        )

    def _schedules(self, subcommand: str, names: list[str]) -> None:
        from django_bgjobs.models import Schedule
        from django_bgjobs.services.schedules import run_schedules_now

        if subcommand == "schedules":
            self.stdout.write(schedule_table(list(Schedule.objects.all())))
            return
        ids = dict(Schedule.objects.filter(name__in=names).values_list("name", "pk"))
        unknown = [name for name in names if name not in ids]
        if unknown:
            raise CommandError(
                f"No schedule named {', '.join(unknown)}.", returncode=EXIT_USAGE
            )
        result = run_schedules_now(ids.values())
        self.stdout.write(
            f"{result.changed} schedule(s) to run at the next tick, "
            f"{result.skipped} already asked: " + ", ".join(names)
        )


def schedule_table(rows: list[Any]) -> str:
    """Return the schedules as a plain text table, one per line."""
    if not rows:
        return "No schedule."

    def when(value: Any) -> str:
        return "-" if value is None else value.isoformat(timespec="seconds")

    lines = [["NAME", "TASK", "EXPRESSION", "ZONE", "STATE", "LAST FIRE", "NEXT FIRE"]]
    lines += [
        [
            row.name,
            row.task,
            row.expression,
            row.timezone,
            "enabled" if row.enabled else "paused",
            when(row.last_fire_at),
            when(row.next_fire_at),
        ]
        for row in rows
    ]
    return _columns(lines)


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def table(queues: list[Any]) -> str:
    """Return the overview as a plain text table, one queue per line."""
    if not queues:
        return "No queue has jobs or a paused state."
    from django_bgjobs.services.queries import window_label

    window = window_label(queues[0].window)
    headers = [
        f"{title} ({window})" if status in FINISHED_COLUMNS else title
        for title, status in COUNTS
    ]
    rows = [["QUEUE", "STATE", *headers, "OLDEST DUE", "LIMITS"]]
    for queue in queues:
        age = queue.oldest_ready_age
        rows.append(
            [
                queue.name,
                "paused" if queue.paused else "running",
                *(str(queue.counts[status]) for _, status in COUNTS),
                "-" if age is None else f"{age:.1f}s",
                queue.limits or "-",
            ]
        )
    return _columns(rows)
