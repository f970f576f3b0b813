"""Admin page of worker processes: the read-only registry, with each
worker's status (running, stopped or lost) and the jobs it runs now.

Status and job count come from ``services.queries.workers()``, one query for
the whole page; nothing here changes a worker row.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from ..models import Worker, WorkerStatus
from ..services import queries
from . import display
from .readonly import ReadOnlyAdmin

STATUS_COLOURS = {
    WorkerStatus.RUNNING: "#1a7f37",
    WorkerStatus.STOPPED: "#6e7781",
    WorkerStatus.LOST: "#c62828",
}


class WorkerStatusFilter(admin.SimpleListFilter):
    """Running, stopped or lost, as the status column computes it."""

    title = "status"
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [(str(value), str(label)) for value, label in WorkerStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(status=value)


class WorkerAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "status_badge",
        "host",
        "pid",
        "queue_names",
        "concurrency",
        "running",
        "started",
        "last_heartbeat",
    )
    list_filter = (WorkerStatusFilter,)
    search_fields = ("id", "host")
    search_help_text = "A worker id or host name, exactly."
    ordering = ("-started_at", "id")
    sortable_by = ()
    actions = None
    readonly_fields = ("status_badge", "running", "queue_names")
    fields = (
        "id",
        "status_badge",
        ("host", "pid"),
        ("queue_names", "concurrency"),
        "running",
        ("started_at", "last_heartbeat_at"),
        ("stopped_at", "lost_at"),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        return queries.workers()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Worker], search_term: str
    ) -> tuple[QuerySet[Worker], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # Equality only: both columns are matched exactly, one on the key.
        return queryset.filter(Q(id=term) | Q(host=term)), False

    @admin.display(description="status")
    def status_badge(self, worker: Any) -> SafeString:
        status = WorkerStatus(worker.status)
        return display.badge(status.label, STATUS_COLOURS[status])

    @admin.display(description="queues")
    def queue_names(self, worker: Worker) -> str:
        return ", ".join(worker.queues) if worker.queues else "all"

    @admin.display(description="running jobs")
    def running(self, worker: Any) -> int:
        return int(worker.running_jobs)

    @admin.display(description="started")
    def started(self, worker: Worker) -> SafeString | str:
        return display.when(worker.started_at)

    @admin.display(description="last heartbeat")
    def last_heartbeat(self, worker: Worker) -> SafeString | str:
        return display.when(worker.last_heartbeat_at)
