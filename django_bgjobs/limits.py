"""Rate and concurrency limits of queues, global across workers and machines.

``BGJOBS["QUEUES"]`` declares them (``quotas``). A worker claims the jobs of
a limited queue through ``Limiter.claim``; the jobs of other queues go through
the plain claim, which leaves limited queues out. A job held back by a limit
stays ready: it is not claimed, so it is neither failed nor charged an
attempt, and it starts once the limit lets it.

A rate is a sliding window: no window of the rate's length holds more than
its count of starts (claims), whatever the window's start. Starts are logged
in Redis (a sorted set per bucket, changed by one Lua script) and in the
database (``bgjobs_rate_slot``); each start is logged under one name in both.

How a claim is decided, by mode:

- ``database`` (no Redis, Redis down, or a queue with only concurrency
  limits): the claim locks the queue's row, so the claims of the queue take
  turns, and counts running jobs and logged starts under that lock.
- ``redis`` (Redis reachable for a while): the Lua script grants starts
  atomically; no database lock unless the queue also has concurrency limits
  (running jobs are counted in the database, under the lock).
- ``both``, for the first ``warm`` seconds after Redis becomes reachable
  (also at start): the database lock and counts, and the Lua script too. A
  worker that just lost Redis (``database``) and one that has it (``redis``)
  never decide at the same time without one of them seeing the other's
  starts: ``both`` lasts longer than the longest window plus the guard's
  retry interval, so by the time a worker trusts Redis alone, every start
  made without Redis has left the window, and Redis holds every later one.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from .broker import Broker, ClaimedJob
from .broker import limited as sql
from .conf import get_settings
from .quotas import QueueLimits
from .redis_guard import RETRY_AFTER, RedisGuard, channel, client

logger = logging.getLogger(__name__)

#: At most this many keys a worker remembers as blocked by their rate.
BLOCKED_MAX = 1000

LUA = """
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local qlimit = tonumber(ARGV[3])
local qwin = tonumber(ARGV[4])
local klimit = tonumber(ARGV[5])
local kwin = tonumber(ARGV[6])
local keep = tonumber(ARGV[7])
local prefix = ARGV[8]
local function count(key, win)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.6f', now - win - keep))
  return redis.call('ZCOUNT', key, string.format('(%.6f', now - win), '+inf')
end
local function oldest(key, win)
  local first = redis.call('ZRANGEBYSCORE', key, string.format('(%.6f', now - win),
                           '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return first[2] and string.format('%.6f', tonumber(first[2]) + win) or ''
end
local qcount = 0
if qlimit > 0 then qcount = count(KEYS[1], qwin) end
local kcount = {}
for i = 2, #KEYS do kcount[i] = count(KEYS[i], kwin) end
local granted, blocked = {}, {}
for c = 9, #ARGV do
  if #granted >= want or (qlimit > 0 and qcount >= qlimit) then break end
  local k = tonumber(ARGV[c])
  if k > 0 and kcount[k] >= klimit then
    blocked[k] = true
  else
    local member = prefix .. tostring(c - 8)
    if qlimit > 0 then
      redis.call('ZADD', KEYS[1], ARGV[1], member)
      qcount = qcount + 1
    end
    if k > 0 then
      redis.call('ZADD', KEYS[k], ARGV[1], member)
      kcount[k] = kcount[k] + 1
    end
    granted[#granted + 1] = c - 8
  end
end
if qlimit > 0 then
  redis.call('PEXPIRE', KEYS[1], math.ceil((qwin + keep) * 1000))
end
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], math.ceil((kwin + keep) * 1000)) end
local reply = {#granted}
for _, c in ipairs(granted) do reply[#reply + 1] = c end
reply[#reply + 1] = (qlimit > 0 and qcount >= qlimit) and oldest(KEYS[1], qwin) or ''
for k, _ in pairs(blocked) do
  reply[#reply + 1] = k
  reply[#reply + 1] = oldest(KEYS[k], kwin)
end
return reply
"""


class Mode(enum.StrEnum):
    DATABASE = "database"
    BOTH = "both"
    REDIS = "redis"


@dataclasses.dataclass
class Claimed:
    """Jobs claimed under limits, and when a limit that held jobs back next
    lets one start (None: when a running job ends, or nothing waits)."""

    jobs: list[ClaimedJob]
    retry_at: dt.datetime | None = None


@dataclasses.dataclass
class Grant:
    """What the Lua script granted: candidate positions, and the times at
    which the queue's window and each full key's window next have room."""

    positions: list[int]
    queue_free_at: dt.datetime | None
    key_free_at: dict[str, dt.datetime]


class RedisFailed(Exception):
    """The Lua script could not run; the claim is decided again without it."""


def _earliest(*times: dt.datetime | None) -> dt.datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _epoch(value: str | bytes) -> dt.datetime | None:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return dt.datetime.fromtimestamp(float(text), dt.UTC) if text else None


class Limiter:
    """Claims the jobs of limited queues for one worker process."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.conf = get_settings()
        self.alias = self.conf.REDIS_CACHE
        self.guard = RedisGuard("rate limits")
        self.script: Any = None
        self.reachable_since: float | None = None
        self.ensured: set[str] = set()
        self.blocked: dict[tuple[str, str], dt.datetime] = {}
        self.trimmed: dict[str, float] = {}
        self.turn = itertools.count()

    # -- which queues ---------------------------------------------------------

    def limited(self, queues: Sequence[str] | None) -> list[str]:
        """Return the limited queues among ``queues`` (None: all queues)."""
        declared = sorted(q for q, limits in self.conf.QUEUES.items() if limits.limited)
        if queues is None:
            return declared
        return [q for q in queues if q in declared]

    # -- claiming -------------------------------------------------------------

    def claim_all(
        self,
        queues: Sequence[str],
        want: int,
        worker: str,
        now: dt.datetime | None,
        lease: float,
    ) -> Claimed:
        """Claim up to ``want`` jobs from the limited ``queues``, taking the
        queues in turn so that a busy one does not starve the others. With
        ``now`` None, each claim reads the clock once it holds its lock."""
        result = Claimed([])
        if not queues:
            return result
        start = next(self.turn) % len(queues)
        for queue in [*queues[start:], *queues[:start]]:
            if len(result.jobs) >= want:
                break
            got = self.claim(queue, want - len(result.jobs), worker, now, lease)
            result.jobs += got.jobs
            result.retry_at = _earliest(result.retry_at, got.retry_at)
        return result

    def claim(
        self,
        queue: str,
        want: int,
        worker: str,
        now: dt.datetime | None,
        lease: float,
    ) -> Claimed:
        """Claim up to ``want`` jobs of ``queue`` within its limits, as of
        ``now`` (None: the time the claim has read the jobs it chooses from,
        under the queue's lock, so that a claim that waited does not start
        its jobs in the past: their ``started_at`` is never before the end
        of the run that made room for them)."""
        limits = self.conf.QUEUES[queue]
        if not sql.has_due(self.broker, queue, now or timezone.now()):
            return Claimed([])
        mode = self.mode(limits)
        try:
            return self._claim(queue, limits, mode, want, worker, now, lease)
        except RedisFailed:
            return self._claim(queue, limits, Mode.DATABASE, want, worker, now, lease)

    def mode(self, limits: QueueLimits) -> Mode:
        if self.alias is None or limits.longest_window == 0 or self.guard.skipping:
            return Mode.DATABASE
        if self.reachable_since is None:
            return Mode.BOTH
        warm = max(limits.longest_window, 2 * RETRY_AFTER) + 1.0
        return (
            Mode.REDIS if time.monotonic() - self.reachable_since >= warm else Mode.BOTH
        )

    def _claim(
        self,
        queue: str,
        limits: QueueLimits,
        mode: Mode,
        want: int,
        worker: str,
        at: dt.datetime | None,
        lease: float,
    ) -> Claimed:
        broker = self.broker
        lock = (
            mode is not Mode.REDIS
            or limits.counts_running
            or broker.connection.vendor == "sqlite"
        )
        if lock and queue not in self.ensured:
            sql.ensure_queue(broker, queue)
            self.ensured.add(queue)
        with transaction.atomic(using=broker.using):
            if lock and not sql.lock_queue(broker, queue):
                self.ensured.discard(queue)  # deleted meanwhile: made next time
                return Claimed([])
            now = timezone.now() if at is None else at
            plan = self._plan(queue, limits, mode, want, now)
            if plan.budget <= 0:
                return Claimed([], plan.retry_at)
            chosen = plan.pick(
                sql.candidates(broker, queue, now, plan.scan, plan.exclude)
            )
            prefix = f"{secrets.token_hex(6)}."
            for n, candidate in enumerate(chosen, start=1):
                candidate.member = f"{prefix}{n}"
            if at is None:
                # Start (and log) the jobs as of the end of the reads that
                # chose them: a run whose end freed a key's slot committed
                # before those reads, so it ended before this start even if
                # this process was held up after taking ``now``. Logging
                # later than ``now`` keeps every window within its rate: the
                # claims of a queue are serialized by its lock.
                now = max(now, timezone.now())
            if mode is not Mode.DATABASE and chosen:
                chosen, retry_at = self._grant(queue, limits, mode, chosen, prefix, now)
                plan.retry_at = _earliest(plan.retry_at, retry_at)
            jobs = sql.claim_chosen(broker, chosen, worker, now, lease)
            self._log(queue, limits, chosen, now)
        return Claimed(jobs, plan.retry_at)

    def _plan(
        self, queue: str, limits: QueueLimits, mode: Mode, want: int, now: dt.datetime
    ) -> Plan:
        broker = self.broker
        plan = Plan(limits, want)
        if limits.counts_running:
            plan.running = sql.running_by_key(broker, queue)
            plan.apply_concurrency()
        if mode is not Mode.REDIS:
            plan.database = True
            if limits.rate is not None:
                since = now - dt.timedelta(seconds=limits.rate.seconds)
                count, oldest = sql.rate_window(broker, queue, "", since)
                plan.budget = min(plan.budget, limits.rate.limit - count)
                if plan.budget <= 0 and oldest is not None:
                    plan.retry_at = oldest + dt.timedelta(seconds=limits.rate.seconds)
            if limits.key_rate is not None:
                window = dt.timedelta(seconds=limits.key_rate.seconds)
                full = sql.full_keys(broker, queue, now - window, limits.key_rate.limit)
                plan.exclude.update(full)
                plan.key_since = now - window
                plan.retry_at = _earliest(
                    plan.retry_at, *(at + window for at in full.values())
                )
        else:
            blocked = self._blocked_keys(queue, now)
            plan.exclude.update(blocked)
            plan.retry_at = _earliest(plan.retry_at, *blocked.values())
        if plan.database and limits.key_rate is not None and plan.budget > 0:
            plan.count_keys = lambda keys: sql.key_counts(
                broker, queue, keys, plan.key_since
            )
        return plan

    def _blocked_keys(self, queue: str, now: dt.datetime) -> dict[str, dt.datetime]:
        """Return the keys of ``queue`` the Lua script found full, with when
        they have room again; forget those past that time."""
        for entry, until in list(self.blocked.items()):
            if until <= now:
                del self.blocked[entry]
        return {key: until for (q, key), until in self.blocked.items() if q == queue}

    # -- Redis ----------------------------------------------------------------

    def _grant(
        self,
        queue: str,
        limits: QueueLimits,
        mode: Mode,
        chosen: list[sql.Candidate],
        prefix: str,
        now: dt.datetime,
    ) -> tuple[list[sql.Candidate], dt.datetime | None]:
        """Ask the Lua script which of ``chosen`` may start. In ``both`` mode a
        failure leaves the database's decision; in ``redis`` mode it raises
        ``RedisFailed`` (the claim holds no lock to decide without Redis)."""
        grant = self.guard.call(
            lambda: self._run_script(queue, limits, chosen, prefix, now), None
        )
        if grant is None:
            self.reachable_since = None
            if mode is Mode.REDIS:
                raise RedisFailed
            return chosen, None
        if self.reachable_since is None:
            self.reachable_since = time.monotonic()
        for key, until in grant.key_free_at.items():
            if len(self.blocked) < BLOCKED_MAX:
                self.blocked[(queue, key)] = until
        picked = [chosen[i - 1] for i in grant.positions]
        retry_at = _earliest(grant.queue_free_at, *grant.key_free_at.values())
        return picked, retry_at

    def _run_script(
        self,
        queue: str,
        limits: QueueLimits,
        chosen: list[sql.Candidate],
        prefix: str,
        now: dt.datetime,
    ) -> Grant:
        alias = self.alias or ""
        redis = client(alias)
        if self.script is None:
            self.script = redis.register_script(LUA)
        keys = [channel(alias, f"rate:{queue}")]
        index: dict[str, int] = {}
        positions = []
        for candidate in chosen:
            key = candidate.limit_key if limits.key_rate is not None else None
            if key is not None and key not in index:
                keys.append(channel(alias, f"rate:{queue}:key:{key}"))
                index[key] = len(keys)
            positions.append(index[key] if key is not None else 0)
        qrate, krate = limits.rate, limits.key_rate
        args = [
            f"{now.timestamp():.6f}",
            len(chosen),
            qrate.limit if qrate else 0,
            qrate.seconds if qrate else 0,
            krate.limit if krate else 0,
            krate.seconds if krate else 0,
            sql.KEEP,
            prefix,
            *positions,
        ]
        reply = self.script(keys=keys, args=args, client=redis)
        count = int(reply[0])
        names = {v: k for k, v in index.items()}
        rest = reply[count + 2 :]
        key_free_at = {}
        for k, at in zip(rest[::2], rest[1::2], strict=True):
            if (free_at := _epoch(at)) is not None:
                key_free_at[names[int(k)]] = free_at
        return Grant(
            positions=[int(p) for p in reply[1 : count + 1]],
            queue_free_at=_epoch(reply[count + 1]),
            key_free_at=key_free_at,
        )

    # -- the database log -----------------------------------------------------

    def _log(
        self,
        queue: str,
        limits: QueueLimits,
        chosen: Sequence[sql.Candidate],
        now: dt.datetime,
    ) -> None:
        """Log the starts of ``chosen`` in ``bgjobs_rate_slot`` (in every
        mode: a worker that loses Redis counts them from there)."""
        if limits.longest_window == 0:
            return
        starts: list[tuple[str, str, dt.datetime]] = []
        for candidate in chosen:
            if limits.rate is not None:
                starts.append(("", candidate.member, now))
            if limits.key_rate is not None and candidate.limit_key is not None:
                starts.append((candidate.limit_key, candidate.member, now))
        sql.log_starts(self.broker, queue, starts)
        last = self.trimmed.get(queue, 0.0)
        if time.monotonic() - last >= 1.0:
            self.trimmed[queue] = time.monotonic()
            keep = dt.timedelta(seconds=limits.longest_window + sql.KEEP)
            sql.trim_log(self.broker, queue, now - keep)


class Plan:
    """The budget of one limited claim and the rules for picking candidates."""

    def __init__(self, limits: QueueLimits, want: int) -> None:
        self.limits = limits
        self.budget = want
        self.running: dict[str | None, int] = {}
        self.exclude: set[str] = set()
        self.retry_at: dt.datetime | None = None
        self.database = False
        self.key_since = dt.datetime.min.replace(tzinfo=dt.UTC)
        self.count_keys: Any = None

    def apply_concurrency(self) -> None:
        limits = self.limits
        if limits.concurrency is not None:
            total = sum(self.running.values())
            self.budget = min(self.budget, limits.concurrency - total)
        if limits.key_concurrency is not None:
            self.exclude.update(
                key
                for key, n in self.running.items()
                if key is not None and n >= limits.key_concurrency
            )

    @property
    def scan(self) -> int:
        """How many candidates to read: more than the budget when keys are
        limited, as several may share a key."""
        return self.budget * 4 + 16 if self.limits.per_key else self.budget

    def pick(self, candidates: list[sql.Candidate]) -> list[sql.Candidate]:
        """Return the candidates that fit, in claim order, up to the budget."""
        limits = self.limits
        logged: dict[str, int] = {}
        if self.count_keys is not None:
            keys = sorted({c.limit_key for c in candidates if c.limit_key is not None})
            logged = self.count_keys(keys)
        taken: collections.Counter[str] = collections.Counter()
        chosen: list[sql.Candidate] = []
        for candidate in candidates:
            if len(chosen) >= self.budget:
                break
            key = candidate.limit_key
            if key is not None and limits.per_key:
                running = self.running.get(key, 0) + taken[key]
                if limits.key_concurrency is not None and (
                    running >= limits.key_concurrency
                ):
                    continue
                started = logged.get(key, 0) + taken[key]
                if (
                    self.database
                    and limits.key_rate is not None
                    and (started >= limits.key_rate.limit)
                ):
                    continue
                taken[key] += 1
            chosen.append(candidate)
        return chosen
