from .job import Attempt, DeadLetter, Job, JobQuerySet
from .worker import Lease, Worker, WorkerStatus

__all__ = [
    "Attempt",
    "DeadLetter",
    "Job",
    "JobQuerySet",
    "Lease",
    "Worker",
    "WorkerStatus",
]
