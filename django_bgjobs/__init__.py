"""Background jobs for Django, kept in the project's own database."""

from .context import JobContext, current_job
from .decorators import JobSpec, background
from .exceptions import (
    InvalidJob,
    InvalidPayload,
    JobCancelled,
    JobDoesNotExist,
    PayloadTooLarge,
    Permanent,
    TaskNotRegistered,
)
from .status import JobStatus

__all__ = [
    "InvalidJob",
    "InvalidPayload",
    "JobCancelled",
    "JobContext",
    "JobDoesNotExist",
    "JobSpec",
    "JobStatus",
    "PayloadTooLarge",
    "Permanent",
    "TaskNotRegistered",
    "background",
    "current_job",
]
__version__ = "0.1.0.dev0"
