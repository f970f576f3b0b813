"""Circuit breakers shared by all workers, kept in the database.

A breaker guards calls to one named dependency (a payment API, a mail
server). After ``failures`` failures within ``window`` seconds it *opens*:
calls raise ``CircuitOpen``, which inside a job snoozes the job (no attempt
charged) until the cool-down ends. Then one caller gets to *probe*
(half-open): its success closes the circuit, its failure opens it again.

The state is one row of ``bgjobs_circuit`` per name, so every process on
every machine sees the same circuit. A call costs one primary-key read;
only failures and state changes write. Failures are counted in fixed
windows: the count starts over when ``window`` seconds have passed since
the first failure of the window.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from django.db import router, transaction
from django.utils import timezone

from .exceptions import CircuitOpen
from .models import Circuit, CircuitState

logger = logging.getLogger("django_bgjobs.circuit")

P = ParamSpec("P")
R = TypeVar("R")


class CircuitBreaker:
    """Guard calls to the dependency ``name``; use as a context manager or
    through ``call``.

    ``failures`` failures within ``window`` seconds open the circuit for
    ``cooldown`` seconds. Only exceptions of ``exceptions`` count; others
    pass through without touching the circuit. A probe that neither
    succeeds nor fails within ``cooldown`` (its worker died) is replaced by
    the next caller.
    """

    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
        exceptions: tuple[type[BaseException], ...] = (Exception,),
        now: Callable[[], dt.datetime] = timezone.now,
    ) -> None:
        if not name or len(name) > 100:
            raise ValueError(f"A circuit name needs 1-100 characters, got {name!r}.")
        if failures < 1 or window <= 0 or cooldown <= 0:
            raise ValueError(
                "CircuitBreaker needs failures >= 1, window > 0 and cooldown > 0, "
                f"got failures={failures!r}, window={window!r}, cooldown={cooldown!r}."
            )
        self.name = name
        self.threshold = failures
        self.window = dt.timedelta(seconds=window)
        self.cooldown = dt.timedelta(seconds=cooldown)
        self.exceptions = exceptions
        self.now = now

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name}>"

    # -- use ------------------------------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        self.allow()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.succeeded()
        elif isinstance(error, self.exceptions) and not isinstance(error, CircuitOpen):
            self.failed(error)

    def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Return ``func(*args, **kwargs)`` through the breaker."""
        with self:
            return func(*args, **kwargs)

    def state(self) -> str:
        """Return ``closed``, ``open`` or ``half_open``."""
        row = self._read()
        return CircuitState.CLOSED if row is None else row.state

    # -- the state machine ---------------------------------------------------

    def allow(self) -> None:
        """Return if a call may go through; raise ``CircuitOpen`` if not."""
        row = self._read()
        if row is None or row.state == CircuitState.CLOSED:
            return
        now = self.now()
        if row.state == CircuitState.OPEN:
            assert row.opened_at is not None  # noqa: S101 (set when opened)
            until = row.opened_at + self.cooldown
            if now < until:
                self._refuse(until - now)
            # The cool-down is over: the first caller to get here probes.
            taken = (
                self._rows()
                .filter(
                    name=self.name, state=CircuitState.OPEN, opened_at=row.opened_at
                )
                .update(
                    state=CircuitState.HALF_OPEN, probe_started_at=now, updated_at=now
                )
            )
        else:
            started = row.probe_started_at or now
            if now < started + self.cooldown:
                self._refuse(self.cooldown / 10)  # wait for the probe's verdict
            taken = (
                self._rows()
                .filter(
                    name=self.name,
                    state=CircuitState.HALF_OPEN,
                    probe_started_at=row.probe_started_at,
                )
                .update(probe_started_at=now, updated_at=now)
            )
        if not taken:
            self._refuse(self.cooldown / 10)  # another caller probes
        logger.info("circuit %s half-open: probing", self.name)

    def failed(self, error: BaseException | None = None) -> None:
        """Count a failed call; open the circuit at the threshold, or again
        if the call was the probe."""
        now = self.now()
        text = "" if error is None else f"{type(error).__name__}: {error}"[:2000]
        with transaction.atomic(using=self._using()):
            row = self._locked(now)
            if row.state == CircuitState.HALF_OPEN:
                self._open(row, now, "its probe failed")
            elif row.state == CircuitState.CLOSED:
                if row.window_started_at is None or now - row.window_started_at >= (
                    self.window
                ):
                    row.failures, row.window_started_at = 0, now
                row.failures += 1
                if row.failures >= self.threshold:
                    self._open(row, now, f"{row.failures} failures")
            row.last_error = text
            row.updated_at = now
            row.save()

    def succeeded(self) -> None:
        """Note a successful call; a successful probe closes the circuit.

        A success while closed writes nothing: the failure count of the
        window stands until the window ends.
        """
        row = self._read()
        if row is None or row.state != CircuitState.HALF_OPEN:
            return
        now = self.now()
        closed = (
            self._rows()
            .filter(name=self.name, state=CircuitState.HALF_OPEN)
            .update(**{**Circuit.closed_fields(), "updated_at": now})
        )
        if closed:
            logger.warning("circuit %s closed: its probe succeeded", self.name)

    # -- rows -----------------------------------------------------------------

    def _using(self) -> str:
        return router.db_for_write(Circuit)

    def _rows(self) -> Any:
        return Circuit.objects.using(self._using())

    def _read(self) -> Circuit | None:
        row: Circuit | None = self._rows().filter(name=self.name).first()
        return row

    def _locked(self, now: dt.datetime) -> Circuit:
        row, _ = (
            self._rows()
            .select_for_update()
            .get_or_create(name=self.name, defaults={"updated_at": now})
        )
        return row  # type: ignore[no-any-return]

    def _open(self, row: Circuit, now: dt.datetime, why: str) -> None:
        row.state = CircuitState.OPEN
        row.opened_at = now
        row.probe_started_at = None
        row.failures = 0
        row.window_started_at = None
        logger.warning(
            "circuit %s opened (%s); calls snooze for %g s",
            self.name,
            why,
            self.cooldown.total_seconds(),
        )

    def _refuse(self, wait: dt.timedelta) -> None:
        seconds = max(wait.total_seconds(), 0.05)
        raise CircuitOpen(
            seconds, f"circuit {self.name} is open; retry in {seconds:.1f} s"
        )
