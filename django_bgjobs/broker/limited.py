"""The SQL of a claim under rate and concurrency limits (``limits.Limiter``
decides; this module reads, locks and writes).

A limited claim runs in one transaction: it locks the queue's ``bgjobs_queue``
row (``lock_queue``), so the claims of that queue across all workers take
turns; counts what runs (``running_by_key``) and what started in the rate
windows (``rate_window``, ``full_keys``, ``key_counts``); reads candidate rows
(``candidates``); claims the chosen ones by id (``claim_chosen``) and logs
their starts (``log_starts``). The lock is a no-op UPDATE, which also takes
SQLite's write lock up front (a read first would fail to upgrade).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Min, QuerySet

from ..models import QueueState, RateSlot
from ..status import CLAIMABLE, JobStatus
from .base import CLAIM_COLUMNS, CLAIMABLE_SQL, NOT_PAUSED_SQL, Broker, ClaimedJob, _in

#: Seconds of the rate log kept past the longest window: a start logged with
#: a slightly older timestamp (a claim that waited for the lock, clocks a
#: little apart) must still find every start it is counted against.
KEEP = 5.0


@dataclasses.dataclass
class Candidate:
    """A claimable row read (and, where the vendor can, locked) for a claim."""

    row: tuple[Any, ...]
    limit_key: str | None
    #: The name of its start in the rate logs, once chosen.
    member: str = ""

    @property
    def id(self) -> int:
        return int(self.row[0])


def ensure_queue(broker: Broker, queue: str) -> None:
    """Create the ``bgjobs_queue`` row of ``queue`` if it is missing."""
    manager = QueueState.objects.using(broker.using)
    if manager.filter(name=queue).exists():
        return
    try:
        with transaction.atomic(using=broker.using):
            manager.get_or_create(name=queue)
    except IntegrityError:
        pass  # another worker created it meanwhile


def has_due(broker: Broker, queue: str, now: dt.datetime) -> bool:
    """Return True if ``queue`` has a due job and is not paused: a probe
    without locks, so that a claim of an idle limited queue takes no lock."""
    with broker.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM bgjobs_job WHERE queue = %s AND status IN {CLAIMABLE_SQL} "
            f"AND run_at <= %s {NOT_PAUSED_SQL} LIMIT 1",
            [queue, broker.adapt(now)],
        )
        return cursor.fetchone() is not None


def lock_queue(broker: Broker, queue: str) -> bool:
    """Lock the row of ``queue`` until the caller's transaction ends; return
    False if the row is missing (see ``ensure_queue``)."""
    with broker.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bgjobs_queue SET updated_at = updated_at WHERE name = %s", [queue]
        )
        return bool(cursor.rowcount)


def running_by_key(broker: Broker, queue: str) -> dict[str | None, int]:
    """Return how many jobs of ``queue`` run now, by ``limit_key``."""
    with broker.connection.cursor() as cursor:
        cursor.execute(
            "SELECT limit_key, COUNT(*) FROM bgjobs_job WHERE queue = %s "
            "AND status = %s GROUP BY limit_key",
            [queue, JobStatus.RUNNING],
        )
        return {key: int(count) for key, count in cursor.fetchall()}


def candidates(
    broker: Broker,
    queue: str,
    now: dt.datetime,
    limit: int,
    exclude_keys: Iterable[str] = (),
) -> list[Candidate]:
    """Return up to ``limit`` due jobs of ``queue`` in claim order, leaving
    out the jobs of ``exclude_keys`` and of a paused queue. Rows another
    transaction holds are skipped (``SKIP LOCKED``) where the vendor can."""
    excluded = sorted(set(exclude_keys))
    key_filter = (
        f"AND (limit_key IS NULL OR limit_key NOT IN {_in(excluded)}) "
        if excluded
        else ""
    )
    columns = f"{CLAIM_COLUMNS}, limit_key"
    tail = f"ORDER BY priority DESC, run_at, id LIMIT %s{broker.skip_locked}"
    if broker.connection.vendor == "mysql":
        # One branch per status walks bgjobs_job_mysql_claim in order (see
        # broker.mysql); ``status IN`` would sort and lock every due row.
        branch = (
            f"(SELECT {columns}, run_at AS due FROM bgjobs_job WHERE status = %s "
            f"AND run_at <= %s AND queue = %s {key_filter}{NOT_PAUSED_SQL} {tail})"
        )
        sql = " UNION ALL ".join([branch] * len(CLAIMABLE))
        sql += " ORDER BY priority DESC, due, id LIMIT %s"
        params: list[Any] = []
        for status in CLAIMABLE:
            params += [status, broker.adapt(now), queue, *excluded, limit]
        params.append(limit)
    else:
        sql = (
            f"SELECT {columns} FROM bgjobs_job WHERE status IN {CLAIMABLE_SQL} "
            f"AND run_at <= %s AND queue = %s {key_filter}{NOT_PAUSED_SQL} {tail}"
        )
        params = [broker.adapt(now), queue, *excluded, limit]
    with broker.connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(CLAIM_COLUMNS.split(","))
    return [Candidate(tuple(row[:width]), row[width]) for row in rows]


def claim_chosen(
    broker: Broker,
    chosen: Sequence[Candidate],
    worker: str,
    now: dt.datetime,
    lease: float,
) -> list[ClaimedJob]:
    """Claim the ``chosen`` rows for ``worker``: one UPDATE by id. The caller
    holds the transaction in which they were read."""
    if not chosen:
        return []
    until = now + dt.timedelta(seconds=lease)
    ids = [c.id for c in chosen]
    with broker.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE bgjobs_job SET status = %s, attempt = attempt + 1, "
            "started_at = %s, lease_expires_at = %s, worker = %s "
            f"WHERE id IN {_in(ids)} AND status IN {CLAIMABLE_SQL}",
            [JobStatus.RUNNING, broker.adapt(now), broker.adapt(until), worker, *ids],
        )
    # The rows were read before the UPDATE bumped the attempt counter.
    return [
        broker._claimed((*c.row[:6], c.row[6] + 1, *c.row[7:11]), worker, now)
        for c in chosen
    ]


def rate_window(
    broker: Broker, queue: str, key: str, since: dt.datetime
) -> tuple[int, dt.datetime | None]:
    """Return the starts logged for ``(queue, key)`` after ``since``: how
    many, and the oldest."""
    window = _log(broker, queue).filter(limit_key=key, at__gt=since)
    found = window.aggregate(count=Count("id"), oldest=Min("at"))
    return int(found["count"]), found["oldest"]


def full_keys(
    broker: Broker, queue: str, since: dt.datetime, limit: int
) -> dict[str, dt.datetime]:
    """Return the keys of ``queue`` with ``limit`` or more starts logged after
    ``since``, each with its oldest start in the window."""
    rows = (
        _log(broker, queue)
        .filter(at__gt=since)
        .exclude(limit_key="")
        .values("limit_key")
        .annotate(count=Count("id"), oldest=Min("at"))
        .filter(count__gte=limit)
        .values_list("limit_key", "oldest")
    )
    return dict(rows)


def key_counts(
    broker: Broker, queue: str, keys: Sequence[str], since: dt.datetime
) -> dict[str, int]:
    """Return the starts logged after ``since`` for each of ``keys``."""
    if not keys:
        return {}
    rows = (
        _log(broker, queue)
        .filter(limit_key__in=keys, at__gt=since)
        .values("limit_key")
        .annotate(count=Count("id"))
        .values_list("limit_key", "count")
    )
    return dict(rows)


def log_starts(
    broker: Broker, queue: str, starts: Sequence[tuple[str, str, dt.datetime]]
) -> None:
    """Log ``(key, member, at)`` starts of ``queue``; ``key`` "" is the
    queue's own rate."""
    if starts:
        RateSlot.objects.using(broker.using).bulk_create(
            [RateSlot(queue=queue, limit_key=k, member=m, at=at) for k, m, at in starts]
        )


def trim_log(broker: Broker, queue: str, before: dt.datetime) -> int:
    """Delete the starts of ``queue`` logged before ``before``."""
    deleted, _ = _log(broker, queue).filter(at__lt=before).delete()
    return deleted


def _log(broker: Broker, queue: str) -> QuerySet[RateSlot]:
    return RateSlot.objects.using(broker.using).filter(queue=queue)
