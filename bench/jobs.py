"""The job the benchmark runs: it does nothing, so the figures measure the
queue's own cost (claim, thread handoff, record)."""

from django_bgjobs import background


@background(name="bench.noop")
def noop():
    return None


@background(name="bench.sleep", attempts=10)
def sleep(seconds: float) -> float:
    """Hold a worker thread for ``seconds``: a job to kill in the middle."""
    import time

    time.sleep(seconds)
    return seconds
