"""Register the bgjobs ModelAdmins on the default admin site."""

from django.contrib import admin

from ..models import Attempt, Circuit, DeadLetter, Job, QueueState, Schedule, Worker
from .attempts import AttemptAdmin
from .circuits import CircuitAdmin
from .dead_letters import DeadLetterAdmin
from .jobs import JobAdmin
from .queues import QueueStateAdmin
from .schedules import ScheduleAdmin
from .workers import WorkerAdmin

admin.site.register(Job, JobAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)
admin.site.register(Attempt, AttemptAdmin)
admin.site.register(Worker, WorkerAdmin)
admin.site.register(Circuit, CircuitAdmin)
admin.site.register(QueueState, QueueStateAdmin)
admin.site.register(Schedule, ScheduleAdmin)
