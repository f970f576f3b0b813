"""The worker's schedule tick: sync once, then fire; a bad declaration or a
bad row is logged and never stops the thread."""

import datetime as dt

import pytest
from django.utils import timezone

from django_bgjobs import background, registry
from django_bgjobs.models import Schedule, ScheduleSlot
from django_bgjobs.worker.ticker import Ticker

pytestmark = pytest.mark.django_db


@pytest.fixture
def declare():
    added = []

    def make(name, **options):
        background(name=name, **options)(lambda: None)
        added.append(name)

    yield make
    for name in added:
        registry._specs.pop(name, None)


def test_first_tick_syncs_declarations_then_fires_due_schedules(declare):
    # An hour apart, so that a slow tick never finds a second slot due.
    declare("tests.ticker.every", interval=3600)
    ticker = Ticker("default")
    assert ticker.once() == 0  # synced: first fire time an hour ahead
    assert ticker.synced
    row = Schedule.objects.get(name="tests.ticker.every")
    Schedule.objects.filter(pk=row.pk).update(next_fire_at=timezone.now())
    assert ticker.once() == 1
    assert ScheduleSlot.objects.filter(schedule=row).count() == 1


def test_a_bad_declaration_is_logged_and_due_rows_still_fire(declare, caplog):
    declare("tests.ticker.bad", cron="0 25 * * *")
    Schedule.objects.create(
        name="by-hand",
        task="tests.jobs.noop",
        # Yearly: a "* * * * *" row due a second ago fired twice when the
        # test ran across a minute boundary.
        cron="0 0 1 1 *",
        timezone="UTC",
        next_fire_at=timezone.now() - dt.timedelta(seconds=1),
    )
    ticker = Ticker("default")
    assert ticker.once() == 1
    assert "schedules not synced: Schedule 'tests.ticker.bad'" in caplog.text
    assert not Schedule.objects.filter(name="tests.ticker.bad").exists()


def test_a_row_that_cannot_be_read_is_logged_and_skipped(caplog):
    Schedule.objects.create(
        name="broken",
        task="tests.jobs.noop",
        cron="* * * * *",
        timezone="No/Such_Zone",
        next_fire_at=timezone.now() - dt.timedelta(seconds=1),
    )
    ticker = Ticker("default")
    ticker.synced = True
    assert ticker.once() == 0
    assert "schedule id=" in caplog.text
    assert "No/Such_Zone" in caplog.text
