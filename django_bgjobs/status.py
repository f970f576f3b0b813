"""The job lifecycle, written once: statuses, allowed transitions, and the
mapping to Django's ``TaskResultStatus``.

Every module that changes a status names its transition here; the test suite
checks this table against the diagram in ``docs/explanation/lifecycle.md``.
"""

from __future__ import annotations

from django.db import models


class JobStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    READY = "ready", "Ready"
    WAITING_CHILDREN = "waiting_children", "Waiting for children"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    INTERRUPTED = "interrupted", "Interrupted (not charged)"
    LOST = "lost", "Worker lost"
    CANCELLED = "cancelled", "Cancelled while running"
    SNOOZED = "snoozed", "Snoozed (not charged)"


#: Statuses from which a worker may claim a job (when ``run_at`` has passed).
CLAIMABLE = (JobStatus.READY, JobStatus.SCHEDULED)
#: Statuses of an unfinished job; such a job holds its idempotency key.
UNFINISHED = (
    JobStatus.SCHEDULED,
    JobStatus.READY,
    JobStatus.WAITING_CHILDREN,
    JobStatus.RUNNING,
)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

#: (from, to) -> the verb that performs it. Broker verbs, admin actions, API
#: endpoints and signals use these same words. Requeueing a finished job or a
#: dead letter inserts a new job; it never moves a finished row back.
TRANSITIONS: dict[tuple[str, str], str] = {
    (JobStatus.SCHEDULED, JobStatus.RUNNING): "claim",
    (JobStatus.READY, JobStatus.RUNNING): "claim",
    (JobStatus.RUNNING, JobStatus.RUNNING): "heartbeat",
    (JobStatus.RUNNING, JobStatus.SUCCEEDED): "complete",
    (JobStatus.RUNNING, JobStatus.SCHEDULED): "retry",
    (JobStatus.RUNNING, JobStatus.READY): "release",
    (JobStatus.RUNNING, JobStatus.FAILED): "fail",
    (JobStatus.RUNNING, JobStatus.CANCELLED): "cancel",
    (JobStatus.SCHEDULED, JobStatus.CANCELLED): "cancel",
    (JobStatus.READY, JobStatus.CANCELLED): "cancel",
    (JobStatus.WAITING_CHILDREN, JobStatus.CANCELLED): "cancel",
    (JobStatus.SCHEDULED, JobStatus.READY): "retry_now",
}


def can_transition(source: str, target: str) -> bool:
    """Return True if the lifecycle allows ``source`` -> ``target``."""
    return (source, target) in TRANSITIONS


def to_task_result_status(status: str) -> str:
    """Map a job status to the name of a Django ``TaskResultStatus`` member."""
    if status in (JobStatus.SCHEDULED, JobStatus.READY, JobStatus.WAITING_CHILDREN):
        return "READY"
    if status == JobStatus.RUNNING:
        return "RUNNING"
    if status == JobStatus.SUCCEEDED:
        return "SUCCESSFUL"
    return "FAILED"
