"""Admin page of schedules: list with last and next fire times, a change
form that rejects a bad expression, zone, interval or task with a form
error, actions pause, resume and run now, and the next five fire times in
the schedule's zone and in UTC.

A schedule declared in code or settings can only be paused and resumed
here: its other fields come from the declaration at every worker start.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..exceptions import InvalidSchedule
from ..models import Schedule, Source
from ..models.schedule import DECLARED_FIELDS
from ..services import schedules
from ..services.operations import ActionResult
from . import display

#: Form fields that a declaration owns.
DECLARED = ("name", *DECLARED_FIELDS)
#: ``InvalidSchedule.field`` -> the form field that shows the error.
ERROR_FIELDS = {"croniter": "cron", "cron": "cron", "timezone": "timezone"}


class ScheduleForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Schedule
        fields = (*DECLARED, "enabled")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.errors or self.instance.source != Source.ADMIN:
            return cleaned
        try:
            schedules.check_schedule(cleaned)
        except InvalidSchedule as error:
            field = ERROR_FIELDS.get(error.field, error.field)
            self.add_error(field if field in self.fields else None, str(error))
        return cleaned


class ScheduleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ScheduleForm
    list_display = (
        "name",
        "task",
        "expression",
        "timezone",
        "enabled",
        "last_fire",
        "next_fire",
        "source",
    )
    list_filter = ("enabled", "source", "misfire")
    search_fields = ("name", "task")
    actions = ("pause", "resume", "run_now")
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "source")}),
        ("When", {"fields": ("cron", "interval", "timezone", "start_at", "end_at")}),
        ("Next fire times", {"fields": ("upcoming",)}),
        ("Recent fires", {"fields": ("recent",)}),
        ("Job", {"fields": ("args", "kwargs", "queue", "priority")}),
        ("Missed slots", {"fields": ("misfire", "misfire_cap", "misfire_grace")}),
        (
            "Fired",
            {
                "fields": (
                    "last_fire_at",
                    "next_fire_at",
                    "run_requested_at",
                    "declared",
                )
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = [
            "source",
            "upcoming",
            "recent",
            "last_fire_at",
            "next_fire_at",
            "run_requested_at",
            "declared",
        ]
        if obj is not None and obj.source != Source.ADMIN:
            fixed += list(DECLARED)
        return fixed

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: Any, change: bool
    ) -> None:
        schedules.save_schedule(obj)

    @admin.display(description="expression")
    def expression(self, row: Schedule) -> str:
        return row.expression

    @admin.display(description="last fire", ordering="last_fire_at")
    def last_fire(self, row: Schedule) -> SafeString | str:
        return display.when(row.last_fire_at)

    @admin.display(description="next fire", ordering="next_fire_at")
    def next_fire(self, row: Schedule) -> SafeString | str:
        return display.when(row.next_fire_at)

    @admin.display(description="next 5 fire times")
    def upcoming(self, row: Schedule) -> SafeString | str:
        if row.pk is None:
            return display.EMPTY
        try:
            times = schedules.upcoming(row, 5)
        except InvalidSchedule as error:
            return str(error)
        if not times:
            return "None: the schedule has ended."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td></tr>",
            (
                (
                    t.local.strftime("%Y-%m-%d %H:%M:%S %Z (%z)"),
                    t.utc.strftime("%Y-%m-%d %H:%M:%S UTC"),
                )
                for t in times
            ),
        )
        return format_html(
            '<table class="bgjobs-upcoming"><thead><tr><th>{}</th><th>UTC</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            row.timezone,
            rows,
        )

    @admin.display(description="last 10 fires")
    def recent(self, row: Schedule) -> SafeString | str:
        slots = schedules.recent_slots(row, 10) if row.pk else []
        if not slots:
            return display.EMPTY
        site = self.admin_site.name
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    display.when(slot.fire_at),
                    slot.get_kind_display(),
                    _job_link(site, slot.job_id),
                )
                for slot in slots
            ),
        )
        return format_html(
            "<table><thead><tr><th>fire time</th><th>kind</th><th>job</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="Pause (disable) schedules", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._report(request, "Pause", schedules.pause_schedules(queryset))

    @admin.action(description="Resume (enable) schedules", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._report(request, "Resume", schedules.resume_schedules(queryset))

    @admin.action(
        description="Run now (one job each, at the next tick)", permissions=["change"]
    )
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._report(request, "Run now", schedules.run_schedules_now(queryset))

    def _report(self, request: HttpRequest, label: str, result: ActionResult) -> None:
        created = ", ".join(f"#{job.pk}" for job in result.created[:10])
        text = f"{label}: {result.changed} changed, {len(result.created)} created"
        text += f" ({created})" if created else ""
        text += f", {result.skipped} skipped."
        done = result.changed or result.created
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)


def _job_link(site: str, job_id: int | None) -> SafeString | str:
    if job_id is None:
        return display.EMPTY
    url = reverse(f"{site}:django_bgjobs_job_change", args=[job_id])
    return format_html('<a href="{}">#{}</a>', url, job_id)
