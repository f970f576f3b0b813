"""Admin page of circuit breakers: each dependency's state, failures and
last error, and a "Close circuit" action for an operator who knows the
dependency is back."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from ..models import Circuit, CircuitState
from ..services.circuits import close_circuits
from . import display
from .readonly import ObjectButton, ReadOnlyAdmin

STATE_COLOURS = {
    CircuitState.CLOSED: "#1a7f37",
    CircuitState.OPEN: "#c62828",
    CircuitState.HALF_OPEN: "#b35900",
}


class CircuitAdmin(ReadOnlyAdmin):
    list_display = ("name", "state_badge", "failures", "opened", "last_error")
    list_filter = ("state",)
    search_fields = ("name",)
    ordering = ("name",)
    actions = ("close",)
    readonly_fields = ("state_badge",)
    fields = (
        "name",
        "state_badge",
        ("failures", "window_started_at"),
        ("opened_at", "probe_started_at"),
        "last_error",
        "updated_at",
    )
    object_buttons = (
        ObjectButton(
            "close",
            "Close circuit",
            close_circuits,
            lambda c: c.state != CircuitState.CLOSED or c.failures > 0,
        ),
    )

    @admin.action(description="Close circuit", permissions=["change"])
    def close(self, request: HttpRequest, queryset: QuerySet[Circuit]) -> None:
        self.report(request, "Close circuit", close_circuits(queryset))

    @admin.display(description="state", ordering="state")
    def state_badge(self, circuit: Circuit) -> SafeString:
        label = CircuitState(circuit.state).label.split(" (")[0]
        return display.badge(label, STATE_COLOURS[CircuitState(circuit.state)])

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, circuit: Circuit) -> SafeString | str:
        return display.when(circuit.opened_at)
