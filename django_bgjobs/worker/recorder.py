"""The recorder thread of a worker process: outcomes and progress, in batches.

Outcomes are written in batches (one fenced UPDATE per batch), at most
``FLUSH_INTERVAL`` after the first of them; a batch is kept and retried while
the database is away. Progress goes through the same thread: a job's newest
value at most once per ``PROGRESS_INTERVAL``, and its last value just before
its outcome, so an older value never lands after a newer one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from .. import signals
from ..broker import Broker, Record, get_broker
from ..broker.base import ready_or_freed
from ..status import AttemptOutcome, JobStatus
from ..wakeup import announce
from .executor import refused
from .outage import Outage
from .progress import Note, ProgressNotes

logger = logging.getLogger("django_bgjobs.worker")

#: The longest wait between two tries while the database is away: also the
#: longest a worker takes to notice it is back.
RETRY_MAX = 2.0


class _Wake:
    """An inbox item that only wakes the recorder: progress is pending."""


WAKE = _Wake()


class Recorder:
    """Writes outcomes in batches; keeps a batch and retries it while the
    database is away, so a computed outcome is not dropped.

    With ``progress`` it also writes the jobs' progress: a job's newest value
    once its interval has passed, and its last one just before its outcome.
    """

    def __init__(
        self,
        broker_alias: str | None,
        flush_interval: float,
        on_flush: Callable[[], None] | None = None,
        outage: Outage | None = None,
        on_ready: Callable[[], None] | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        self.outage = outage or Outage("?")
        self.on_ready = on_ready
        # SimpleQueue: a put costs a job thread a fraction of Queue's.
        self.inbox: queue.SimpleQueue[Record | _Wake | None] = queue.SimpleQueue()
        self.progress = ProgressNotes(progress_interval, self.wake)
        self.flush_interval = flush_interval
        self.alias = broker_alias
        self.on_flush = on_flush
        self.thread = threading.Thread(target=self._loop, name="bgjobs-recorder")
        self.thread.daemon = True

    def put(self, record: Record) -> None:
        self.inbox.put(record)

    def wake(self) -> None:
        self.inbox.put(WAKE)

    def stop(self) -> None:
        self.inbox.put(None)
        self.thread.join()

    def _gather(self, first: Record | _Wake) -> tuple[list[Record | _Wake], bool]:
        batch: list[Record | _Wake] = [first]
        stop = False
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < 500:
            timeout = deadline - time.monotonic()
            try:
                item = (
                    self.inbox.get(timeout=max(timeout, 0))
                    if timeout > 0
                    else (self.inbox.get_nowait())
                )
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _loop(self) -> None:
        broker = get_broker(self.alias)
        stop = False
        wait: float | None = None  # until progress is due; None: none pending
        while not stop:
            try:
                first = self.inbox.get(timeout=wait)
            except queue.Empty:
                first = WAKE
            if first is None:
                break
            items, stop = ([], False) if first is WAKE else self._gather(first)
            batch = [item for item in items if isinstance(item, Record)]
            try:
                wait = self._write_progress(broker, batch)
                if batch:
                    self._write(broker, batch)
            except Exception:
                # The jobs stay running under their lease and are reaped.
                logger.exception("could not record %d outcomes", len(batch))
        connections.close_all()

    def _write_progress(self, broker: Broker, batch: list[Record]) -> float | None:
        """Write the progress that is due, and the last progress of the jobs
        of ``batch`` (before their outcomes); return the seconds until the
        next progress is due."""
        notes = self.progress.final({record.job.id for record in batch})
        due, wait = self.progress.due(time.monotonic())
        if notes or due:
            self._write_notes(broker, due + notes)
        return wait

    def _write_notes(self, broker: Broker, notes: list[Note]) -> None:
        delay = 0.1
        while True:
            try:
                broker.write_progress(notes, timezone.now())
            except (OperationalError, InterfaceError) as error:
                self.outage.failed(f"writing the progress of {len(notes)} jobs", error)
                connections[broker.using].close()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except (DatabaseError, UnicodeError):
                # Checked when reported: not worth blocking the outcomes for.
                logger.exception("could not write the progress of %d jobs", len(notes))
            return

    def _write(self, broker: Broker, batch: list[Record]) -> None:
        applied = self._record(broker, batch)
        log = logger.isEnabledFor(logging.INFO)
        for record in applied:
            if log:
                log_finish(record)
            send_outcome_signals(record)
        if self.on_flush is not None:
            self.on_flush()
        if waiting := ready_or_freed(applied):
            # A retry or a release, or a slot freed under a concurrency
            # limit: claim now, or sleep until the job is due. Other workers
            # hear of it through Redis, if configured (PostgreSQL's NOTIFY
            # went with the record).
            if self.on_ready is not None:
                self.on_ready()
            announce(waiting)

    def _record(self, broker: Broker, batch: list[Record]) -> list[Record]:
        """Record ``batch``, waiting out outages; return the applied records.

        An outage (the database is away) is retried until it ends, so no
        outcome computed meanwhile is lost. Any other database error is a value
        the database refuses: the batch is split so that one bad record cannot
        block the others, and that record becomes a dead letter.
        """
        delay = 0.1
        while True:
            try:
                applied = broker.record(batch)
            except (OperationalError, InterfaceError) as error:
                self.outage.failed(f"recording {len(batch)} outcomes", error)
                connections[broker.using].close()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except (DatabaseError, UnicodeError) as error:
                if len(batch) > 1:
                    return [a for r in batch for a in self._record(broker, [r])]
                return self._record_refused(broker, batch[0], error)
            self.outage.succeeded()
            return applied

    def _record_refused(
        self, broker: Broker, record: Record, error: Exception
    ) -> list[Record]:
        logger.error(
            "database refused the outcome of job id=%s attempt=%s: %s",
            record.job.id,
            record.job.attempt,
            error,
        )
        try:
            return broker.record([refused(record, error)])
        except Exception:
            # The job stays running under its lease, and the reaper retries it.
            logger.exception("could not record job id=%s at all", record.job.id)
            return []


def log_finish(record: Record) -> None:
    job = record.job
    duration = (record.finished_at - job.started_at).total_seconds()
    logger.info(
        "job finished id=%s task=%s queue=%s attempt=%s outcome=%s status=%s "
        "duration=%.3fs",
        job.id,
        job.task,
        job.queue,
        job.attempt,
        record.outcome,
        record.status,
        duration,
    )


def send_outcome_signals(record: Record) -> None:
    if record.status == JobStatus.CANCELLED or record.outcome == AttemptOutcome.SNOOZED:
        return
    job = record.job
    common = {"job_id": job.id, "queue": job.queue, "attempt": job.attempt}
    if record.status == JobStatus.SUCCEEDED:
        if signals.job_succeeded.has_listeners():
            duration = (record.finished_at - job.started_at).total_seconds()
            signals.job_succeeded.send(
                job.task, duration=duration, result=record.result, **common
            )
        return
    if record.error_class and signals.job_failed.has_listeners():
        signals.job_failed.send(job.task, error=record.error, **common)
    if record.status in (JobStatus.SCHEDULED, JobStatus.READY):
        if signals.job_retried.has_listeners():
            signals.job_retried.send(
                job.task, error=record.error, run_at=record.run_at, **common
            )
    elif record.status == JobStatus.FAILED and signals.job_dead.has_listeners():
        signals.job_dead.send(job.task, reason=record.reason, **common)
