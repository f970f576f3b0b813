"""List filters: queue, task and error class offer the values that exist
(one DISTINCT from ``services.queries`` each), and dead letters open on the
pending ones.

Every filter is an equality; on jobs, the largest table, each one is on an
indexed column (status, queue, task), so a filtered page stays cheap however
many rows the table holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from ..services import queries


class ValuesFilter(admin.SimpleListFilter):
    """Equality filter on ``field`` whose choices come from ``values``."""

    field: ClassVar[str]
    values: ClassVar[Callable[[], list[str]]]

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [(value, value) for value in type(self).values()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(**{self.field: value})


class QueueFilter(ValuesFilter):
    title = "queue"
    parameter_name = "queue"
    field = "queue"
    values = staticmethod(queries.queue_names)


class TaskFilter(ValuesFilter):
    title = "task"
    parameter_name = "task"
    field = "task"
    values = staticmethod(queries.task_names)


class DeadLetterTaskFilter(ValuesFilter):
    title = "task"
    parameter_name = "task"
    field = "task"
    values = staticmethod(queries.dead_letter_task_names)


class ErrorClassFilter(ValuesFilter):
    title = "error class"
    parameter_name = "error_class"
    field = "error_class"
    values = staticmethod(queries.dead_letter_error_classes)


class DeadLetterStateFilter(admin.SimpleListFilter):
    """Pending (not requeued yet), requeued, or all; pending when unset."""

    title = "state"
    parameter_name = "state"
    default = "pending"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("pending", "Pending"), ("requeued", "Requeued"), ("all", "All")]

    def value(self) -> str:
        return super().value() or self.default

    def choices(self, changelist: Any) -> Iterator[Any]:
        # No "All" entry of the default kind: the unset value means pending.
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: lookup}
                ),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "pending":
            return queryset.filter(requeued_at__isnull=True)
        if value == "requeued":
            return queryset.filter(requeued_at__isnull=False)
        return queryset


def as_id(term: str) -> int | None:
    """Return the row id a search term names (``42`` or ``#42``), or None."""
    number = term.strip().removeprefix("#")
    if number.isascii() and number.isdigit() and len(number) < 19:
        return int(number)
    return None


def id_or_key(
    term: str, key_field: str = "key", id_fields: tuple[str, ...] = ("id",)
) -> Q:
    """Return the filter for a search term: an id or an exact idempotency key.

    Both are equality lookups, so the search stays on an index.
    """
    condition = Q(**{key_field: term.strip()})
    number = as_id(term)
    if number is not None:
        for field in id_fields:
            condition |= Q(**{field: number})
    return condition
