"""Operator actions on circuit breakers: close (reset) circuits by name."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import router
from django.db.models import QuerySet

from ..models import Circuit, CircuitState
from .operations import ActionResult


def close_circuits(selection: QuerySet[Circuit] | Iterable[str]) -> ActionResult:
    """Close the selected circuits now: calls go through again and the
    failure count starts over. Circuits already closed are skipped."""
    if isinstance(selection, QuerySet):
        names = list(selection.values_list("name", flat=True))
    else:
        names = list(selection)
    changed = (
        Circuit.objects.using(router.db_for_write(Circuit))
        .filter(name__in=names)
        .exclude(state=CircuitState.CLOSED, failures=0)
        .update(**Circuit.closed_fields())
    )
    return ActionResult(changed=changed, skipped=len(names) - changed)
