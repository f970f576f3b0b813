"""Admin pages of dead letters: jobs that gave up, pending ones first, with
their payload, reason and copied attempt history, and the requeue operation.

A requeue enqueues a new job through ``services.operations`` and leaves the
dead letter in place, pointing at that job.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from ..models import DeadLetter
from ..services import operations
from . import display
from .filters import (
    DeadLetterStateFilter,
    DeadLetterTaskFilter,
    ErrorClassFilter,
    id_or_key,
)
from .readonly import ObjectButton, ReadOnlyAdmin


class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = (
        "dead_letter",
        "error",
        "attempts",
        "created",
        "state",
        "job_link",
    )
    list_display_links = ("dead_letter",)
    list_columns = (
        "id",
        "task",
        "error_class",
        "reason",
        "attempts",
        "created_at",
        "requeued_at",
        "job_id",
        "requeued_job_id",
    )
    list_filter = (DeadLetterStateFilter, ErrorClassFilter, DeadLetterTaskFilter)
    search_fields = ("id", "job__id", "key")
    search_help_text = "A dead letter id, a job id (42 or #42) or an exact key."
    ordering = ("-id",)
    sortable_by = ("dead_letter",)
    actions = ("requeue",)
    readonly_fields = (
        "state",
        "job_link",
        "requeued_job_link",
        "reason_text",
        "args_json",
        "kwargs_json",
        "history_table",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "task",
                    ("queue", "priority"),
                    "key",
                    "attempts",
                    "created_at",
                    "job_link",
                )
            },
        ),
        ("Why it gave up", {"fields": ("error_class", "reason_text")}),
        ("Arguments", {"fields": ("args_json", "kwargs_json")}),
        ("Attempt history", {"fields": ("history_table",)}),
        ("Requeue", {"fields": ("state", "requeued_at", "requeued_job_link")}),
    )
    object_buttons = (
        ObjectButton(
            "requeue",
            "Requeue",
            operations.requeue_dead_letters,
            lambda letter: letter.requeued_at is None,
        ),
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DeadLetter], search_term: str
    ) -> tuple[QuerySet[DeadLetter], bool]:
        if not search_term.strip():
            return queryset, False
        condition = id_or_key(search_term, "key", ("id", "job_id"))
        return queryset.filter(condition), False

    def subtitle(self, letter: DeadLetter) -> str:
        return f"Dead letter #{letter.pk} of {letter.task}"

    @admin.action(description="Requeue", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self.report(request, "Requeue", operations.requeue_dead_letters(queryset))

    @admin.display(description="dead letter", ordering="id")
    def dead_letter(self, letter: DeadLetter) -> str:
        return f"#{letter.pk} {letter.task}"

    @admin.display(description="created")
    def created(self, letter: DeadLetter) -> SafeString | str:
        return display.when(letter.created_at)

    @admin.display(description="error")
    def error(self, letter: DeadLetter) -> SafeString:
        return format_html(
            "<strong>{}</strong><br>{}",
            letter.error_class or display.EMPTY,
            Truncator(letter.reason).chars(80),
        )

    @admin.display(description="state")
    def state(self, letter: DeadLetter) -> SafeString:
        if letter.requeued_at is None:
            return display.badge("Pending", display.STATUS_COLOURS["failed"])
        requeued = display.badge("Requeued", display.STATUS_COLOURS["cancelled"])
        pk = letter.requeued_job_id
        if pk is None:
            return requeued
        link = display.admin_link(self.admin_site.name, "job", pk, f"#{pk}")
        return format_html("{} as {}", requeued, link)

    @admin.display(description="job")
    def job_link(self, letter: DeadLetter) -> SafeString | str:
        if letter.job_id is None:
            return "deleted"
        site = self.admin_site.name
        return display.admin_link(site, "job", letter.job_id, f"#{letter.job_id}")

    @admin.display(description="requeued as")
    def requeued_job_link(self, letter: DeadLetter) -> SafeString | str:
        pk = letter.requeued_job_id
        site = self.admin_site.name
        return display.admin_link(site, "job", pk, f"#{pk}")

    @admin.display(description="reason")
    def reason_text(self, letter: DeadLetter) -> SafeString:
        return display.preformatted(letter.reason)

    @admin.display(description="args")
    def args_json(self, letter: DeadLetter) -> SafeString:
        return display.pretty_json(letter.args)

    @admin.display(description="kwargs")
    def kwargs_json(self, letter: DeadLetter) -> SafeString:
        return display.pretty_json(letter.kwargs)

    @admin.display(description="history")
    def history_table(self, letter: DeadLetter) -> SafeString:
        return display.history_table(letter.history)
