from .circuit import Circuit, CircuitState
from .job import Attempt, DeadLetter, Job, JobQuerySet
from .queue import QueueState, RateSlot
from .schedule import Misfire, Schedule, ScheduleSlot, SlotKind, Source
from .worker import Lease, Worker, WorkerStatus

__all__ = [
    "Attempt",
    "Circuit",
    "CircuitState",
    "DeadLetter",
    "Job",
    "JobQuerySet",
    "Lease",
    "Misfire",
    "QueueState",
    "RateSlot",
    "Schedule",
    "ScheduleSlot",
    "SlotKind",
    "Source",
    "Worker",
    "WorkerStatus",
]
