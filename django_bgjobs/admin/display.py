"""How stored values look on admin pages: badges, JSON, durations, links.

Every value from a row goes through ``format_html`` or ``escape``, so a
payload such as ``"<script>"`` is shown as text and never run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from django.template.defaultfilters import linebreaksbr
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..status import AttemptOutcome, JobStatus

EMPTY = "-"

STATUS_COLOURS: dict[str, str] = {
    JobStatus.SCHEDULED: "#5c6f82",
    JobStatus.READY: "#1f6feb",
    JobStatus.WAITING_CHILDREN: "#7048b6",
    JobStatus.RUNNING: "#b35900",
    JobStatus.SUCCEEDED: "#1a7f37",
    JobStatus.FAILED: "#c62828",
    JobStatus.CANCELLED: "#6e7781",
}
OUTCOME_COLOURS: dict[str, str] = {
    AttemptOutcome.SUCCEEDED: "#1a7f37",
    AttemptOutcome.FAILED: "#c62828",
    AttemptOutcome.TIMED_OUT: "#b35900",
    AttemptOutcome.INTERRUPTED: "#5c6f82",
    AttemptOutcome.LOST: "#7048b6",
    AttemptOutcome.CANCELLED: "#6e7781",
    AttemptOutcome.SNOOZED: "#0969da",
}
BADGE_STYLE = (
    "display:inline-block;padding:2px 9px;border-radius:10px;color:#fff;"
    "font-size:11px;font-weight:600;line-height:16px;white-space:nowrap;"
    "background:"
)
PRE_STYLE = (
    "margin:0;padding:8px 10px;max-height:32em;overflow:auto;"
    "white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;"
    "font-family:var(--font-family-monospace,monospace);"
    "background:var(--darkened-bg,#f8f8f8);"
    "border:1px solid var(--hairline-color,#e8e8e8);border-radius:4px"
)
TABLE_STYLE = "width:100%;border:1px solid var(--hairline-color,#e8e8e8)"


#: Shorter labels than the choices' where the badge would crowd a table.
SHORT_OUTCOME_LABELS: dict[str, str] = {
    AttemptOutcome.INTERRUPTED: "Interrupted",
    AttemptOutcome.CANCELLED: "Cancelled",
    AttemptOutcome.SNOOZED: "Snoozed",
}


def badge(label: str, colour: str, title: str = "") -> SafeString:
    """Return a coloured pill with ``label`` as escaped text."""
    return format_html(
        '<span title="{}" style="{}{}">{}</span>', title, BADGE_STYLE, colour, label
    )


def status_badge(status: str) -> SafeString:
    label = JobStatus(status).label if status in JobStatus.values else status
    return badge(label, STATUS_COLOURS.get(status, "#444"))


def outcome_badge(outcome: str) -> SafeString:
    known = outcome in AttemptOutcome.values
    label = AttemptOutcome(outcome).label if known else outcome
    short = SHORT_OUTCOME_LABELS.get(outcome, label)
    return badge(short, OUTCOME_COLOURS.get(outcome, "#444"), label)


#: JSON up to this length is shown on one line, longer JSON indented.
ONE_LINE_JSON = 80


def pretty_json(value: Any) -> SafeString:
    """Return ``value`` as JSON in an escaped ``<pre>`` block: on one line
    when short, indented otherwise."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > ONE_LINE_JSON:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return preformatted(text)


#: Progress JSON longer than this is cut short in the job list.
PROGRESS_CHARS = 40


def progress(value: Any, short: bool = False) -> SafeString:
    """Return a job's progress: a bar and the percentage for a number, the
    JSON (cut to ``PROGRESS_CHARS`` when ``short``) for anything else."""
    if value is None:
        return SafeString(EMPTY)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_html(
            '<span style="white-space:nowrap"><progress value="{}" max="100" '
            'style="width:5em;vertical-align:middle"></progress> {}%</span>',
            value,
            f"{value:g}",
        )
    if not short:
        return pretty_json(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > PROGRESS_CHARS:
        text = text[: PROGRESS_CHARS - 1] + "\u2026"
    return format_html("<code>{}</code>", text)


def preformatted(text: str) -> SafeString:
    if not text:
        return SafeString(EMPTY)
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text)


def traceback_details(summary: str, traceback: str) -> SafeString:
    """Return a collapsed ``<details>`` holding a traceback."""
    return format_html(
        '<details><summary style="cursor:pointer">{}</summary>{}</details>',
        summary,
        preformatted(traceback),
    )


def duration(seconds: float | None) -> str:
    """Return ``seconds`` for a person: "350 ms", "12.4 s", "3 min 5 s".

    The spaces are non-breaking, so a table cell never splits a duration.
    """
    return _duration(seconds).replace(" ", "\N{NO-BREAK SPACE}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return EMPTY
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def span(start: Any, end: Any) -> str:
    """Return the duration between two datetimes (or ISO strings)."""
    start, end = _as_datetime(start), _as_datetime(end)
    if start is None or end is None:
        return EMPTY
    return duration((end - start).total_seconds())


def when(value: Any) -> SafeString | str:
    """Return a datetime (or ISO string) as a compact local time,
    ``2025-01-02 03:04:05``, that wraps only between date and time."""
    moment = _as_datetime(value)
    if moment is None:
        return str(value) if value else EMPTY
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return format_html(
        "{} {}",
        nowrap(moment.strftime("%Y-%m-%d")),
        nowrap(moment.strftime("%H:%M:%S")),
    )


def dotted(name: str) -> SafeString | str:
    """Return a dotted name that a narrow cell may wrap after each dot."""
    if not name:
        return EMPTY
    parts = name.split(".")
    return format_html_join(SafeString(".<wbr>"), "{}", ((part,) for part in parts))


def nowrap(text: str) -> SafeString:
    return format_html('<span style="white-space:nowrap">{}</span>', text)


def _as_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def admin_link(site: str, model: str, pk: Any, text: str) -> SafeString | str:
    """Return a link to the change page of a ``django_bgjobs`` row."""
    if pk is None:
        return EMPTY
    try:
        url = reverse(f"{site}:django_bgjobs_{model}_change", args=[pk])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}">{}</a>', url, text)


HISTORY_COLUMNS = (
    "#",
    "Outcome",
    "Worker",
    "Started",
    "Finished",
    "Duration",
    "Error class",
    "Message",
)


def history_table(history: Iterable[Any]) -> SafeString:
    """Return a dead letter's copied attempt history as an escaped table."""
    rows = [h for h in history if isinstance(h, dict)]
    if not rows:
        return SafeString(EMPTY)
    head = format_html_join("", "<th>{}</th>", ((c,) for c in HISTORY_COLUMNS))
    body = format_html_join("", "<tr>{}</tr>", ((_history_row(h),) for h in rows))
    return format_html(
        '<table style="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        TABLE_STYLE,
        head,
        body,
    )


def _history_row(entry: dict[str, Any]) -> SafeString:
    cells = (
        entry.get("number", EMPTY),
        outcome_badge(str(entry.get("outcome", ""))),
        entry.get("worker") or EMPTY,
        when(entry.get("started_at")),
        when(entry.get("finished_at")),
        span(entry.get("started_at"), entry.get("finished_at")),
        entry.get("error_class") or EMPTY,
        linebreaksbr(entry.get("error_message") or EMPTY),
    )
    return format_html_join("", "<td>{}</td>", ((c,) for c in cells))
