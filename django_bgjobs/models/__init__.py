from .job import Attempt, DeadLetter, Job, JobQuerySet

__all__ = ["Attempt", "DeadLetter", "Job", "JobQuerySet"]
