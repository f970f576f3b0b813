"""The schedule tick of one worker process, on a thread of its own.

At start it syncs the declared schedules to their rows, then fires the due
ones once a second, so an every-second schedule has no gaps. Every process
ticks; the unique slot rows make each fire time one job whatever their
number. A failure is logged and retried on the next tick: a bad schedule
or a database that is away never stops the worker.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from django.db import DatabaseError, connections

from ..exceptions import BgJobsException
from ..scheduler import sync, tick

logger = logging.getLogger("django_bgjobs.worker")

#: Seconds between two ticks.
TICK_SECONDS = 1.0
#: Seconds after a whole second that a tick starts (up to twice this).
TICK_OFFSET = 0.02


class Ticker:
    def __init__(self, using: str) -> None:
        self.using = using
        self.synced = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="bgjobs-schedules")
        self.thread.daemon = True

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        # Just after each whole second of the wall clock, where cron slots
        # fall; the jitter spreads the processes' ticks a little.
        offset = TICK_OFFSET * (1 + random.random())  # noqa: S311 (not crypto)
        while not self.done.is_set():
            self.once()
            self.done.wait(TICK_SECONDS - time.time() % TICK_SECONDS + offset)
        connections[self.using].close()

    def once(self) -> int:
        """Sync (until it has succeeded once), then tick; return the jobs
        enqueued."""
        if not self.synced:
            self._sync()
        try:
            return tick(using=self.using)
        except DatabaseError as error:
            logger.error("schedule tick failed: %s", error)
            connections[self.using].close()
        except Exception:
            # Whatever a schedule row holds, the thread must tick on.
            logger.exception("schedule tick failed")
        return 0

    def _sync(self) -> None:
        try:
            sync()
        except DatabaseError as error:
            logger.error("schedules not synced (retried next tick): %s", error)
            connections[self.using].close()
            return
        except BgJobsException as error:
            # A bad declaration: reported by the system checks as well.
            logger.error("schedules not synced: %s", error)
        except Exception:
            logger.exception("schedules not synced")
        self.synced = True
