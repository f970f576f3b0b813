"""Admin pages of attempts, one row per run of a job: the read-only list and
detail (with the traceback), and the inline history on a job's page.

Attempts are written once, when a run's outcome is recorded, and never
edited, so nothing here changes them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from ..models import Attempt
from . import display
from .filters import as_id
from .readonly import ReadOnlyAdmin


class AttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    """The runs of a job, oldest first, read-only."""

    model = Attempt
    fields = (
        "number",
        "outcome_badge",
        "worker",
        "started",
        "finished",
        "run_time",
        "error_class",
        "message",
    )
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "attempt history"
    template = "admin/django_bgjobs/readonly/tabular.html"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return super().get_queryset(request).defer("traceback")

    @admin.display(description="outcome")
    def outcome_badge(self, attempt: Attempt) -> SafeString:
        return display.outcome_badge(attempt.outcome)

    @admin.display(description="started")
    def started(self, attempt: Attempt) -> SafeString | str:
        return display.when(attempt.started_at)

    @admin.display(description="finished")
    def finished(self, attempt: Attempt) -> SafeString | str:
        return display.when(attempt.finished_at)

    @admin.display(description="duration")
    def run_time(self, attempt: Attempt) -> str:
        return display.duration(attempt.duration)

    @admin.display(description="error message")
    def message(self, attempt: Attempt) -> str:
        return Truncator(attempt.error_message).chars(300) or display.EMPTY


class AttemptAdmin(ReadOnlyAdmin):
    list_display = (
        "attempt",
        "job_link",
        "outcome_badge",
        "worker",
        "started",
        "run_time",
        "error",
    )
    list_columns = (
        "id",
        "job_id",
        "number",
        "outcome",
        "worker",
        "started_at",
        "finished_at",
        "error_class",
        "job__id",
        "job__task",
    )
    list_display_links = ("attempt",)
    list_select_related = ("job",)
    list_filter = ("outcome",)
    search_fields = ("job__id",)
    search_help_text = "A job id (42 or #42)."
    ordering = ("-id",)
    sortable_by = ()
    readonly_fields = ("outcome_badge", "run_time", "traceback_text")
    fields = (
        "job",
        "number",
        "outcome_badge",
        "worker",
        ("started_at", "finished_at", "run_time"),
        "error_class",
        "error_message",
        "traceback_text",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Attempt], search_term: str
    ) -> tuple[QuerySet[Attempt], bool]:
        if not search_term.strip():
            return queryset, False
        number = as_id(search_term)
        if number is None:
            return queryset.none(), False
        return queryset.filter(job_id=number), False

    @admin.display(description="attempt")
    def attempt(self, attempt: Attempt) -> str:
        return str(attempt.number)

    @admin.display(description="job")
    def job_link(self, attempt: Attempt) -> SafeString | str:
        text = f"#{attempt.job_id} {attempt.job.task}"
        return display.admin_link(self.admin_site.name, "job", attempt.job_id, text)

    @admin.display(description="outcome")
    def outcome_badge(self, attempt: Attempt) -> SafeString:
        return display.outcome_badge(attempt.outcome)

    @admin.display(description="duration")
    def run_time(self, attempt: Attempt) -> str:
        return display.duration(attempt.duration)

    @admin.display(description="started")
    def started(self, attempt: Attempt) -> SafeString | str:
        return display.when(attempt.started_at)

    @admin.display(description="error class")
    def error(self, attempt: Attempt) -> SafeString | str:
        return display.dotted(attempt.error_class)

    @admin.display(description="traceback")
    def traceback_text(self, attempt: Attempt) -> SafeString:
        return display.preformatted(attempt.traceback)
