"""Operator actions on queues: pause and resume, by name, across all workers.

A pause is one committed row (``bgjobs_queue.paused_at``); every worker's
claim statement reads it, so no worker claims a job of the queue after its
next claim. Jobs already running finish. On PostgreSQL a resume wakes idle
workers when it commits: a trigger on ``bgjobs_queue`` sends the NOTIFY
(migration 0007), so this module needs neither the broker nor the wake-up
package, which the admin may not reach.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import router, transaction
from django.utils import timezone

from ..conf import QUEUE_NAME
from ..exceptions import InvalidJob
from ..models import Job, QueueState
from .operations import ActionResult

#: The longest ``paused_by`` kept (the column's size).
PAUSED_BY_MAX = 150


def queue_names(names: Iterable[str] | str) -> list[str]:
    """Return ``names`` without repeats, in order; a string is one name.

    Raise ``InvalidJob`` naming the first name that is not a queue name.
    """
    if isinstance(names, str):
        names = [names]
    unique: list[str] = []
    for name in names:
        if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
            raise InvalidJob(
                f"Invalid queue name {name!r}: use 1-100 letters, digits, "
                "'_', '-', '.' or ':'."
            )
        if name not in unique:
            unique.append(name)
    return unique


def pause_queues(names: Iterable[str] | str, by: str = "") -> ActionResult:
    """Pause the queues ``names``: no worker claims their jobs from its next
    claim on, until they are resumed. Running jobs finish; queues already
    paused are skipped (``by`` stays the first pauser's).

    A queue need not have jobs, or exist anywhere else, to be paused.
    Raise ``InvalidJob`` if a name is not a valid queue name.
    """
    names = queue_names(names)
    if not names:
        return ActionResult()
    using = router.db_for_write(Job)
    now = timezone.now()
    states = QueueState.objects.using(using)
    with transaction.atomic(using=using):
        # Rows first, unpaused; then one conditional UPDATE whose count is
        # exact even when two operators pause the same queue at once.
        states.bulk_create(
            [QueueState(name=name, updated_at=now) for name in names],
            ignore_conflicts=True,
        )
        changed = states.filter(name__in=names, paused_at__isnull=True).update(
            paused_at=now, paused_by=by[:PAUSED_BY_MAX], updated_at=now
        )
    return ActionResult(changed=changed, skipped=len(names) - changed)


def resume_queues(names: Iterable[str] | str) -> ActionResult:
    """Resume the queues ``names``: workers claim their jobs again. Queues
    not paused are skipped.

    On PostgreSQL idle workers are woken when this commits; elsewhere they
    see the queue at their next poll (``POLL_INTERVAL``, or
    ``WAKE_POLL_INTERVAL`` while a Redis listener is connected).

    Raise ``InvalidJob`` if a name is not a valid queue name.
    """
    names = queue_names(names)
    if not names:
        return ActionResult()
    changed = (
        QueueState.objects.using(router.db_for_write(Job))
        .filter(name__in=names, paused_at__isnull=False)
        .update(paused_at=None, paused_by="", updated_at=timezone.now())
    )
    return ActionResult(changed=changed, skipped=len(names) - changed)
