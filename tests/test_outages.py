"""OutageTracker: one start and one end per outage, however many calls."""

from django_bgjobs.outages import OutageTracker, describe


def test_an_outage_starts_once_and_ends_once_with_its_failure_count():
    tracker = OutageTracker()
    assert tracker.succeeded() is None  # no outage to end
    assert [tracker.failed() for _ in range(3)] == [True, False, False]
    assert tracker.down
    lasted, failures = tracker.succeeded()
    assert (lasted >= 0, failures) == (True, 3)
    assert not tracker.down
    assert tracker.succeeded() is None
    assert tracker.failed() is True  # the next outage starts afresh


def test_describe_puts_a_multi_line_driver_message_on_one_line():
    error = OSError("server closed the connection\n\tThis probably means ...")
    assert describe(error) == "server closed the connection This probably means ..."
    assert describe(KeyError()) == "KeyError"
