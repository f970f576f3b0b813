"""Signals sent at each step of a job's life.

Senders are the task name (a str); receivers get ``job_id``, ``queue`` and the
step's own arguments. ``job_enqueued`` is sent once the enqueueing transaction
commits; ``job_started`` just before the job runs; the outcome signals after
the outcome is recorded, in batches. A receiver that raises is logged and
does not disturb the job or the other receivers.
"""

from __future__ import annotations

from django.dispatch import Signal

job_enqueued = Signal()  # job_id, queue
job_started = Signal()  # job_id, queue, attempt
job_succeeded = Signal()  # job_id, queue, attempt, duration, result
job_retried = Signal()  # job_id, queue, attempt, error, run_at
job_failed = Signal()  # job_id, queue, attempt, error (a failed attempt)
job_dead = Signal()  # job_id, queue, attempt, reason (sent to dead letters)
