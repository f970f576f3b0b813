from .circuit import Circuit, CircuitState
from .job import Attempt, DeadLetter, Job, JobQuerySet
from .queue import QueueState, RateSlot
from .worker import Lease, Worker, WorkerStatus

__all__ = [
    "Attempt",
    "Circuit",
    "CircuitState",
    "DeadLetter",
    "Job",
    "JobQuerySet",
    "Lease",
    "QueueState",
    "RateSlot",
    "Worker",
    "WorkerStatus",
]
