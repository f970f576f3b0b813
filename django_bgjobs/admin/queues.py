"""Admin page of queues: every queue that has jobs, was ever paused or is
declared in ``BGJOBS["QUEUES"]``, with its job counts, paused state and
declared limits, and Pause / Resume for one queue or many. Unfinished jobs
are counted exactly, finished ones over the last 24 hours (the headers say
so): a count of every finished job would read the whole table.

A custom list page, not the model's changelist: a queue that has jobs but was
never paused has no ``QueueState`` row, and a GET must not write one. Figures
come from ``services.queries.queue_overview()``; changes go through
``services.queues`` on POST only, with the change permission.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from ..exceptions import InvalidJob
from ..services.queries import (
    FINISHED_WINDOW,
    QueueOverview,
    queue_overview,
    window_label,
)
from ..services.queues import pause_queues, resume_queues
from ..status import FINISHED, JobStatus
from . import display
from .readonly import ReadOnlyAdmin

#: Columns of job counts, in lifecycle order: every unfinished job, and the
#: jobs finished within the overview's window (named in the header).
COUNTED = (
    JobStatus.SCHEDULED,
    JobStatus.READY,
    JobStatus.WAITING_CHILDREN,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
#: What a verb did to a queue, and what it left alone (as the CLI says it).
OUTCOME_WORDS = {
    "pause": ("paused", "already paused"),
    "resume": ("resumed", "not paused"),
}
PAUSED_COLOUR = "#c62828"
RUNNING_COLOUR = "#1a7f37"

# Inline, so the page needs no template file; admin CSS classes only.
PAGE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">Home</a> &rsaquo;
<a href="{% url 'admin:app_list' app_label=opts.app_label %}">{{ opts.app_config.verbose_name }}</a>
&rsaquo; Queues</div>{% endblock %}
{% block content %}<div id="content-main"><div class="module" id="changelist">
<form method="post">{% csrf_token %}
{% if can_change %}<div class="actions">
<button type="submit" class="button" name="action" value="pause">Pause selected</button>
<button type="submit" class="button" name="action" value="resume">Resume selected</button>
</div>{% endif %}
<div class="results"><table id="result_list"><thead><tr>
{% if can_change %}<th scope="col" class="action-checkbox-column"></th>{% endif %}
<th scope="col">Queue</th><th scope="col">State</th>
{% for label in columns %}<th scope="col">{{ label }}</th>{% endfor %}
<th scope="col">Oldest due</th><th scope="col">Limits</th>{% if can_change %}<th scope="col"></th>{% endif %}
</tr></thead><tbody>
{% for row in rows %}<tr>
{% if can_change %}<td class="action-checkbox"><input type="checkbox" name="queue" value="{{ row.name }}" aria-label="{{ row.name }}"></td>{% endif %}
<th class="field-name"><a href="{{ row.jobs_url }}">{{ row.name }}</a></th><td class="field-state">{{ row.state }}</td>
{% for count in row.counts %}<td>{{ count }}</td>{% endfor %}
<td class="field-oldest">{{ row.oldest }}</td><td class="field-limits">{{ row.limits }}</td>
{% if can_change %}<td>{% if row.paused %}<button type="submit" class="button" name="resume" value="{{ row.name }}">Resume</button>{% else %}<button type="submit" class="button" name="pause" value="{{ row.name }}">Pause</button>{% endif %}</td>{% endif %}
</tr>{% empty %}<tr><td colspan="100">No queue has jobs or a paused state.</td></tr>{% endfor %}
</tbody></table></div></form></div></div>{% endblock %}
"""


class QueueStateAdmin(ReadOnlyAdmin):
    """One page, the list; there is no add, change or delete page."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        view = self.admin_site.admin_view(self.queues_view)
        return [path("", view, name=name)]

    def queues_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._change(request)
        can_change = self.has_change_permission(request)
        jobs_url = reverse(f"{self.admin_site.name}:django_bgjobs_job_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues",
            "opts": self.opts,
            "can_change": can_change,
            "columns": _columns(FINISHED_WINDOW),
            "rows": [self._row(queue, jobs_url) for queue in queue_overview()],
        }
        request.current_app = self.admin_site.name
        template = engines["django"].from_string(PAGE)
        return TemplateResponse(request, template, context)

    @staticmethod
    def _row(queue: QueueOverview, jobs_url: str) -> dict[str, Any]:
        return {
            "name": queue.name,
            "jobs_url": f"{jobs_url}?{urlencode({'queue': queue.name})}",
            "paused": queue.paused,
            "state": _state(queue),
            "counts": [queue.counts[status] for status in COUNTED],
            "oldest": display.duration(queue.oldest_ready_age),
            "limits": queue.limits or display.EMPTY,
        }

    def _change(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        verb, names = _asked(request)
        if verb not in OUTCOME_WORDS or not names:
            self.message_user(
                request, "Select queues, then an action.", messages.WARNING
            )
            return HttpResponseRedirect(request.path)
        try:
            if verb == "pause":
                result = pause_queues(names, by=request.user.get_username())
            else:
                result = resume_queues(names)
        except InvalidJob as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.path)
        done, left = OUTCOME_WORDS[verb]
        self.message_user(
            request,
            f"{result.changed} queue(s) {done}, {result.skipped} {left}.",
            messages.SUCCESS if result.changed else messages.WARNING,
        )
        return HttpResponseRedirect(request.path)


def _columns(window: dt.timedelta) -> list[str]:
    """Return the headers of the count columns: ``Succeeded (24 h)``."""
    span = window_label(window)
    return [
        f"{JobStatus(status).label} ({span})"
        if status in FINISHED
        else JobStatus(status).label
        for status in COUNTED
    ]


def _asked(request: HttpRequest) -> tuple[str, list[str]]:
    """Return the verb and the queue names of a POST: a row's own button
    (``pause=<name>``), or a bulk action over the checked rows."""
    post = request.POST
    for verb in ("pause", "resume"):
        if verb in post:
            return verb, [post[verb]]
    return post.get("action", ""), post.getlist("queue")


def _state(queue: QueueOverview) -> SafeString:
    if not queue.paused:
        return display.badge("Running", RUNNING_COLOUR)
    by = f" by {queue.paused_by}" if queue.paused_by else ""
    return format_html(
        "{} since {}{}",
        display.badge("Paused", PAUSED_COLOUR),
        display.when(queue.paused_at),
        by,
    )
