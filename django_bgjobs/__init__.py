"""Background jobs for Django, kept in the project's own database."""

from .context import JobContext, current_job
from .decorators import JobSpec, background
from .exceptions import (
    CircuitOpen,
    InvalidJob,
    InvalidPayload,
    JobCancelled,
    JobDoesNotExist,
    PayloadTooLarge,
    Permanent,
    Snooze,
    TaskNotRegistered,
)
from .status import JobStatus

__all__ = [
    "CircuitOpen",
    "InvalidJob",
    "InvalidPayload",
    "JobCancelled",
    "JobContext",
    "JobDoesNotExist",
    "JobSpec",
    "JobStatus",
    "PayloadTooLarge",
    "Permanent",
    "Snooze",
    "TaskNotRegistered",
    "background",
    "current_job",
]
__version__ = "0.1.0.dev0"
