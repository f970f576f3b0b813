"""The event loop of one worker process: its coroutine jobs, many at once.

One daemon thread runs an asyncio loop. The claim loop hands it jobs of
``async def`` tasks; each runs as an asyncio task in a fresh
``contextvars.Context`` (so no two jobs share ``current_job()`` or a
database connection), at most ``size`` at a time. An operator's cancel and
the shutdown cancel the asyncio task; the outcome goes to ``finish``, on the
loop's thread, as a thread job's outcome does.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import traceback
from collections.abc import Callable

from ..broker import ClaimedJob
from ..exceptions import JobCancelled
from .executor import Executor, Outcome

logger = logging.getLogger("django_bgjobs.worker")


class AsyncRunner:
    """Runs coroutine jobs on an event loop of their own thread."""

    def __init__(
        self,
        executor: Executor,
        finish: Callable[[ClaimedJob, Outcome], None],
        size: int,
    ) -> None:
        self.executor = executor
        self.finish = finish
        self.size = size
        #: Made in ``start``: a loop never started is never left unclosed.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Job id -> its asyncio task; touched on the loop's thread only.
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.thread = threading.Thread(
            target=self._run_loop, name="bgjobs-async", daemon=True
        )
        self.slots: asyncio.Semaphore | None = None

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread.start()

    def submit(self, job: ClaimedJob) -> None:
        """Start ``job`` on the loop (any thread, after ``start``)."""
        assert self.loop is not None  # noqa: S101
        self.loop.call_soon_threadsafe(self._start, job)

    def cancel(self, job_id: int) -> None:
        """Cancel the asyncio task of ``job_id``, if it runs (any thread)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._cancel, job_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every job still on the loop, give them ``timeout`` seconds
        to unwind, stop the loop.

        Their outcomes are dropped by ``finish``: the process released those
        jobs already. With ``timeout`` 0 nothing is awaited: after a hard
        timeout the loop may be blocked by the overdue job.
        """
        if self.loop is None or not self.thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop)
        if timeout > 0:
            try:
                future.result(timeout)
            except Exception:
                logger.warning("coroutine jobs did not unwind within %.1f s", timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if timeout > 0:
            self.thread.join(timeout)

    # -- on the loop's thread ---------------------------------------------

    def _run_loop(self) -> None:
        assert self.loop is not None  # noqa: S101  (set by start)
        asyncio.set_event_loop(self.loop)
        self.slots = asyncio.Semaphore(self.size)
        try:
            self.loop.run_forever()
            # Stopped before every task unwound (a stop that did not wait):
            # let them unwind now, so that none is destroyed pending.
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        finally:
            self.loop.close()

    def _start(self, job: ClaimedJob) -> None:
        assert self.loop is not None  # noqa: S101
        # A fresh context: Django's connections live in context variables,
        # and a copy of this thread's context would share their storage.
        task = self.loop.create_task(
            self._job(job), name=f"bgjobs-job-{job.id}", context=contextvars.Context()
        )
        self.tasks[job.id] = task

    async def _job(self, job: ClaimedJob) -> None:
        try:
            outcome = await self._run(job)
        except asyncio.CancelledError:
            if not job.cancel.is_set():
                return  # the shutdown: the process released the job
            # An operator's cancel while the job waited for a slot.
            error = JobCancelled(f"job {job.id} was cancelled by an operator")
            outcome = Outcome(error=error)
        except Exception as error:
            logger.exception("coroutine job failed id=%s task=%s", job.id, job.task)
            outcome = Outcome(error=error, traceback=traceback.format_exc())
        finally:
            self.tasks.pop(job.id, None)
        try:
            self.finish(job, outcome)
        except Exception:
            logger.exception("could not finish job id=%s", job.id)

    async def _run(self, job: ClaimedJob) -> Outcome:
        assert self.slots is not None  # noqa: S101  (set before the loop runs)
        async with self.slots:
            return await self.executor.arun(job)

    def _cancel(self, job_id: int) -> None:
        task = self.tasks.get(job_id)
        if task is not None:
            task.cancel(f"job {job_id} was cancelled by an operator")

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel("the worker is shutting down")
        await asyncio.gather(*tasks, return_exceptions=True)
