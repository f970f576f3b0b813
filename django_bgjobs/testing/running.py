"""``drain()``: run every ready job in the calling process, and count them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..status import JobStatus

if TYPE_CHECKING:
    from ..worker.local import Run


@dataclasses.dataclass(frozen=True)
class DrainResult:
    """What ``drain()`` ran: the jobs by the status they ended in."""

    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    #: Jobs that snoozed and wait for their time.
    snoozed: int = 0
    #: Runs, retries included.
    attempts: int = 0
    #: The ids of the jobs run, in the order they first ran.
    jobs: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        """The number of jobs run."""
        return len(self.jobs)

    @classmethod
    def of(cls, runs: Sequence[Run]) -> DrainResult:
        """Count ``runs``."""
        status = [run.status for run in runs]
        return cls(
            succeeded=status.count(JobStatus.SUCCEEDED),
            failed=status.count(JobStatus.FAILED),
            cancelled=status.count(JobStatus.CANCELLED),
            snoozed=sum(run.snoozed for run in runs),
            attempts=sum(run.attempts for run in runs),
            jobs=tuple(run.job_id for run in runs),
        )


def drain(
    queue: str | Sequence[str] | None = None,
    *,
    include_scheduled: bool = False,
    max_jobs: int = 1000,
    raise_errors: bool = False,
    using: str | None = None,
) -> DrainResult:
    """Run every ready job of ``queue`` (a name, names, or None: all) in this
    process until none is left, jobs that they enqueue included.

    Jobs are claimed with the worker's claim (priority, then ``run_at``),
    run by its executor and recorded by its recorder; retries run at once.
    With ``include_scheduled``, delayed jobs run too, earliest first. Paused
    queues are left alone; rate and concurrency limits are not applied.
    Raise ``TooManyJobs`` when ``max_jobs`` jobs ran and more are left (a job
    that enqueues another forever). With ``raise_errors``, stop and raise the
    error of the first job that ends failed.
    """
    from ..worker.local import LocalRunner

    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
        raise ValueError(f"max_jobs must be an int of 1 or more, got {max_jobs!r}.")
    queues = [queue] if isinstance(queue, str) else queue
    if queues is not None:
        queues = list(queues)
        if not queues or not all(isinstance(name, str) for name in queues):
            raise ValueError(f"queue must be a name or names, got {queue!r}.")
    runs = LocalRunner(using).drain(queues, include_scheduled, max_jobs, raise_errors)
    return DrainResult.of(runs)
