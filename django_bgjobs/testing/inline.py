"""Inline mode: each job runs in the enqueuing process when its transaction
commits, through the worker's own claim, executor and recorder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def run_inline(enabled: bool = True, *, raise_errors: bool = False) -> Iterator[None]:
    """Run the jobs enqueued in the block inline (or not, ``enabled=False``).

    Each job row is written as usual; the job runs in this process when the
    enqueuing transaction commits (at once outside a transaction, or inside
    only a test case's), and its retries run at once. A delayed job waits
    (``drain(include_scheduled=True)`` runs it). A job's error is recorded,
    not raised, unless ``raise_errors``: then the error of a job that ends
    failed propagates from ``enqueue()``, or from the commit.
    """
    from ..enqueue import inline_override

    token = inline_override.set((enabled, raise_errors))
    try:
        yield
    finally:
        inline_override.reset(token)
