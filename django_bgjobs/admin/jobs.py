"""Admin pages of jobs: a list with status, queue, task, progress, attempts
and run time; a read-only detail with the payload, the progress, the outcome
and the attempt history; and the operations retry now and cancel (a running
job is asked to stop: its worker flags it to the job code at the next
heartbeat).

Every change goes through ``services.operations``, whose conditional UPDATEs
leave alone a job that a worker moved meanwhile.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..models import Job
from ..services import operations, queries
from ..status import FINISHED, JobStatus
from . import display
from .attempts import AttemptInline
from .filters import QueueFilter, TaskFilter, id_or_key
from .readonly import ObjectButton, ReadOnlyAdmin

CANCELLABLE = (JobStatus.SCHEDULED, JobStatus.READY, JobStatus.WAITING_CHILDREN)
RETRYABLE = (JobStatus.SCHEDULED, *FINISHED)


class JobAdmin(ReadOnlyAdmin):
    list_display = (
        "job",
        "queue",
        "status_badge",
        "progress_bar",
        "attempts",
        "created",
        "run_time",
    )
    list_display_links = ("job",)
    list_columns = (
        "id",
        "task",
        "queue",
        "status",
        "attempt",
        "uncharged",
        "max_attempts",
        "created_at",
        "started_at",
        "finished_at",
        # The status column reads it for running jobs.
        "cancel_requested_at",
        "progress",
    )
    list_filter = ("status", QueueFilter, TaskFilter)
    search_fields = ("id", "key")
    search_help_text = "A job id (42 or #42) or an exact idempotency key."
    ordering = ("-id",)
    sortable_by = ("job",)
    actions = ("retry_now", "cancel")
    inlines = (AttemptInline,)
    readonly_fields = (
        "declared_by",
        "status_badge",
        "progress_bar",
        "progress_detail",
        "attempts",
        "run_time",
        "args_json",
        "kwargs_json",
        "result_json",
        "error_text",
        "last_traceback",
        "dead_letters",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    ("task", "declared_by"),
                    "status_badge",
                    "progress_detail",
                    ("queue", "priority"),
                    "attempts",
                    ("key", "limit_key"),
                    "worker",
                )
            },
        ),
        (
            "Outcome",
            {"fields": ("result_json", "error_text", "last_traceback", "dead_letters")},
        ),
        ("Arguments", {"fields": ("args_json", "kwargs_json")}),
        (
            "Timing",
            {
                "fields": (
                    ("created_at", "run_at"),
                    ("started_at", "finished_at", "run_time"),
                    ("timeout", "lease_expires_at", "cancel_requested_at"),
                    ("result_ttl", "expires_at"),
                )
            },
        ),
        (
            "Internals",
            {
                "classes": ("collapse",),
                "fields": ("attempt", "uncharged", "max_attempts", "active_key"),
            },
        ),
    )
    object_buttons = (
        ObjectButton(
            "retry", "Retry now", operations.retry_jobs, lambda j: j.status in RETRYABLE
        ),
        ObjectButton(
            "cancel",
            "Cancel",
            operations.cancel_jobs,
            lambda j: (
                j.status in CANCELLABLE
                or (j.status == JobStatus.RUNNING and j.cancel_requested_at is None)
            ),
        ),
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.filter(id_or_key(search_term)), False

    @admin.action(description="Retry now", permissions=["change"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.report(request, "Retry now", operations.retry_jobs(queryset))

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.report(request, "Cancel", operations.cancel_jobs(queryset))

    @admin.display(description="job", ordering="id")
    def job(self, job: Job) -> str:
        return f"#{job.pk} {job.task}"

    @admin.display(description="declared by")
    def declared_by(self, job: Job) -> str:
        return queries.declared_by(job.task)

    @admin.display(description="status")
    def status_badge(self, job: Job) -> SafeString:
        badge = display.status_badge(job.status)
        if job.status == JobStatus.RUNNING and job.cancel_requested_at:
            return format_html("{} cancel requested", badge)
        return badge

    @admin.display(description="progress")
    def progress_bar(self, job: Job) -> SafeString:
        return display.progress(job.progress, short=True)

    @admin.display(description="progress")
    def progress_detail(self, job: Job) -> SafeString:
        """The progress the job last reported, and when it was written."""
        if job.progress is None:
            return SafeString(display.EMPTY)
        return format_html(
            "{} <small>as of {}</small>",
            display.progress(job.progress),
            display.when(job.progress_at),
        )

    @admin.display(description="attempts")
    def attempts(self, job: Job) -> SafeString:
        """Charged attempts over the budget; interrupted runs do not count."""
        note = f"{job.uncharged} interrupted, not charged" if job.uncharged else ""
        return format_html(
            '<span title="{}">{}/{}</span>',
            note,
            job.charged_attempts,
            job.max_attempts,
        )

    @admin.display(description="created")
    def created(self, job: Job) -> SafeString | str:
        return display.when(job.created_at)

    @admin.display(description="run time")
    def run_time(self, job: Job) -> str:
        if job.status not in FINISHED or not job.started_at or not job.finished_at:
            return display.EMPTY
        return display.span(job.started_at, job.finished_at)

    @admin.display(description="args")
    def args_json(self, job: Job) -> SafeString:
        return display.pretty_json(job.args)

    @admin.display(description="kwargs")
    def kwargs_json(self, job: Job) -> SafeString:
        return display.pretty_json(job.kwargs)

    @admin.display(description="result")
    def result_json(self, job: Job) -> SafeString:
        if job.status != JobStatus.SUCCEEDED and job.result is None:
            return SafeString(display.EMPTY)
        return display.pretty_json(job.result)

    @admin.display(description="error")
    def error_text(self, job: Job) -> SafeString:
        return display.preformatted(job.error)

    @admin.display(description="last traceback")
    def last_traceback(self, job: Job) -> SafeString:
        attempt = queries.last_traceback(job.pk)
        if attempt is None:
            return SafeString(display.EMPTY)
        summary = f"Attempt {attempt.number}: {attempt.error_class}"
        return display.traceback_details(summary, attempt.traceback)

    @admin.display(description="dead letters")
    def dead_letters(self, job: Job) -> SafeString:
        letters = queries.dead_letters_of(job.pk)
        if not letters:
            return SafeString(display.EMPTY)
        site = self.admin_site.name
        return format_html_join(
            ", ",
            "{} ({})",
            (
                (
                    display.admin_link(site, "deadletter", d.pk, f"#{d.pk}"),
                    "requeued" if d.requeued_at else "pending",
                )
                for d in letters
            ),
        )
