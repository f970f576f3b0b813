"""The base of every bgjobs ModelAdmin: rows are read, never edited, because
only the lifecycle (workers and ``services.operations``) may change them.

There is no add page, the change page is a detail page that refuses POST, and
a change goes through a named operation: a bulk action on the list, or a
POST-only, CSRF-protected button on the detail page that needs the change
permission. The list loads only the columns it shows, so a page costs the
same few queries whatever its size, and past 100,000 rows it shows the
PostgreSQL planner's estimate ("about N") instead of counting them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from ..services import queries
from ..services.operations import ActionResult

#: How many new jobs a message links to before it stops listing them.
LINKED_JOBS = 10


@dataclass(frozen=True)
class ObjectButton:
    """A button on the detail page that POSTs to ``<pk>/<slug>/``."""

    slug: str
    label: str
    operation: Callable[[list[Any]], ActionResult]
    shown: Callable[[Any], bool] = lambda obj: True


class EstimatingPaginator(Paginator):  # type: ignore[type-arg]
    """Count the rows exactly, unless the PostgreSQL planner estimates more
    than ``queries.ESTIMATE_ABOVE``: then take its estimate (``estimated``),
    which the list shows as "about N" (the app's ``pagination.html``,
    ``search_form.html`` and ``actions.html``). An exact count reads every
    row it counts: about a second per ten million jobs."""

    #: Above this many rows (by the planner's estimate) the list shows the
    #: estimate.
    estimate_above = queries.ESTIMATE_ABOVE
    estimated = False

    @cached_property
    def count(self) -> int:
        rows = cast("QuerySet[Any]", self.object_list)
        count, self.estimated = queries.count_or_estimate(rows, self.estimate_above)
        return count

    @property
    def count_text(self) -> str:
        """The count as the list shows it: ``about 10,000,000`` or ``42``."""
        return f"about {self.count:,}" if self.estimated else str(self.count)


class ColumnsChangeList(ChangeList):
    """Load only ``list_columns`` for the rows of the list page."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: Any = None
    ) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        columns = getattr(self.model_admin, "list_columns", ())
        return queryset.only(*columns) if columns else queryset


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """List and detail pages of rows that only named operations change."""

    change_form_template = "admin/django_bgjobs/readonly/change_form.html"
    list_columns: Sequence[str] = ()
    object_buttons: Sequence[ObjectButton] = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator[Any]:
        return EstimatingPaginator(queryset, per_page, orphans, allow_empty_first_page)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        names = [f.name for f in self.opts.concrete_fields]
        return [*self.readonly_fields, *names]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ColumnsChangeList

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":
            # A saved form would write every column back over whatever a
            # worker wrote meanwhile: changes go through the buttons.
            return HttpResponseNotAllowed(["GET"])
        context = {
            "title": f"View {self.opts.verbose_name}",
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"title": capfirst(self.opts.verbose_name_plural)}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        context["object_buttons"] = self._buttons_for(request, obj)
        if obj is not None:
            context["subtitle"] = self.subtitle(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def subtitle(self, obj: Any) -> str:
        """Return the heading of the detail page."""
        return str(obj)

    def _buttons_for(self, request: HttpRequest, obj: Any) -> list[dict[str, str]]:
        if obj is None or not self.has_change_permission(request, obj):
            return []
        return [
            {"label": b.label, "url": self._url(b.slug, obj.pk)}
            for b in self.object_buttons
            if b.shown(obj)
        ]

    def _url(self, name: str, pk: Any) -> str:
        opts = self.opts
        url_name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}"
        return reverse(url_name, args=[pk])

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}_"
        urls = [
            path(
                f"<path:object_id>/{button.slug}/",
                self.admin_site.admin_view(self._button_view(button)),
                name=prefix + button.slug,
            )
            for button in self.object_buttons
        ]
        return urls + super().get_urls()

    def _button_view(self, button: ObjectButton) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            if not self.has_change_permission(request):
                raise PermissionDenied
            obj = self.get_object(request, unquote(object_id))
            if obj is None:
                raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}")
            if not self.has_change_permission(request, obj):
                raise PermissionDenied
            self.report(request, button.label, button.operation([obj.pk]))
            return HttpResponseRedirect(self._url("change", obj.pk))

        view.__name__ = f"{self.opts.model_name}_{button.slug}"
        return view

    def report(self, request: HttpRequest, label: str, result: ActionResult) -> None:
        """Tell the user what an operation changed, created and skipped."""
        created = len(result.created)
        asked = (
            format_html(", {} running asked to stop", result.requested)
            if result.requested
            else ""
        )
        text = format_html(
            "{}: {} changed, {} created{}, {} skipped.{}",
            label,
            result.changed,
            created,
            asked,
            result.skipped,
            self._created_links(result.created),
        )
        done = result.changed or created or result.requested
        level = messages.SUCCESS if done else messages.WARNING
        self.message_user(request, text, level)

    def _created_links(self, jobs: Sequence[Model]) -> SafeString:
        if not jobs:
            return SafeString("")
        site = self.admin_site.name
        links = format_html_join(
            ", ",
            '<a href="{}">#{}</a>',
            (
                (reverse(f"{site}:django_bgjobs_job_change", args=[j.pk]), j.pk)
                for j in jobs[:LINKED_JOBS]
            ),
        )
        more = " ..." if len(jobs) > LINKED_JOBS else ""
        return format_html(" New: {}{}", links, more)
