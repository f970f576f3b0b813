"""The job the benchmark runs: it does nothing, so the figures measure the
queue's own cost (claim, thread handoff, record)."""

from django_bgjobs import background


@background(name="bench.noop")
def noop():
    return None
