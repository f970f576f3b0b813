"""Background jobs for Django, kept in the project's own database."""

from .decorators import JobSpec, background
from .exceptions import (
    InvalidJob,
    InvalidPayload,
    JobDoesNotExist,
    PayloadTooLarge,
    Permanent,
    TaskNotRegistered,
)
from .status import JobStatus

__all__ = [
    "InvalidJob",
    "InvalidPayload",
    "JobDoesNotExist",
    "JobSpec",
    "JobStatus",
    "PayloadTooLarge",
    "Permanent",
    "TaskNotRegistered",
    "background",
]
__version__ = "0.1.0.dev0"
