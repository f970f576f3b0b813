"""The progress running jobs report, held until the recorder writes it.

``set_progress()`` only stores the newest value of its job here (a dict
assignment under a lock), so a tight loop costs no query. The recorder thread
writes a job's newest value at most once per ``PROGRESS_INTERVAL``, and
writes the last one before the job's outcome: one thread writes both, so an
older value can never land after a newer one. Every write is fenced by the
attempt, so a stale run's progress changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: (job id, attempt, value): one progress write.
Note = tuple[int, int, Any]


class ProgressNotes:
    """The newest unwritten progress of each running job of a process."""

    def __init__(self, interval: float, wake: Callable[[], None]) -> None:
        self.interval = interval
        self.wake = wake
        self.lock = threading.Lock()
        #: job id -> (attempt, newest value not written yet)
        self.pending: dict[int, tuple[int, Any]] = {}
        #: job id -> time.monotonic() of its last write
        self.written: dict[int, float] = {}

    def progress(self, job_id: int, attempt: int, value: Any) -> None:
        """Note ``value`` as the newest progress of ``job_id`` (any thread)."""
        with self.lock:
            fresh = job_id not in self.pending
            self.pending[job_id] = (attempt, value)
        if fresh:
            self.wake()

    def due(self, now: float) -> tuple[list[Note], float | None]:
        """Take the notes whose interval has passed at ``now``; return them
        and the seconds until the next one is due (None: none pending)."""
        notes: list[Note] = []
        wait: float | None = None
        with self.lock:
            for job_id, (attempt, value) in list(self.pending.items()):
                left = self.written.get(job_id, -float("inf")) + self.interval - now
                if left <= 0:
                    del self.pending[job_id]
                    self.written[job_id] = now
                    notes.append((job_id, attempt, value))
                else:
                    wait = left if wait is None else min(wait, left)
        return notes, wait

    def final(self, job_ids: set[int]) -> list[Note]:
        """Take the unwritten progress of the finished jobs ``job_ids``, and
        forget them."""
        notes = []
        with self.lock:
            for job_id in job_ids:
                self.written.pop(job_id, None)
                pending = self.pending.pop(job_id, None)
                if pending is not None:
                    notes.append((job_id, *pending))
        return notes
