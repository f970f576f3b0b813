"""Schedules in the database: sync of declarations, the tick with a
controllable clock, misfire policies, run now, exactly once per slot."""

import datetime as dt
import io
import threading
import zoneinfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings

from django_bgjobs import background, registry, scheduler
from django_bgjobs.declarations import Declaration, declared
from django_bgjobs.exceptions import InvalidSchedule
from django_bgjobs.models import Job, Schedule, ScheduleSlot, Source
from django_bgjobs.services.schedules import (
    pause_schedules,
    resume_schedules,
    run_schedules_now,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


@pytest.fixture
def declare():
    """Register ``@background`` tasks for one test only."""
    added = []

    def make(name, **options):
        spec = background(name=name, **options)(lambda: None)
        added.append(name)
        return spec

    yield make
    for name in added:
        registry._specs.pop(name, None)


def make_schedule(name="s", task="tests.jobs.noop", **fields):
    fields.setdefault("cron", "* * * * *")
    fields.setdefault("timezone", "UTC")
    fields.setdefault("created_at", NOW)
    row = Schedule(name=name, task=task, **fields)
    row.next_fire_at = fields.get("next_fire_at") or row.timetable().next_after(NOW)
    row.save()
    return row


def jobs_of(row):
    ids = ScheduleSlot.objects.filter(schedule=row).values_list("job_id", flat=True)
    return Job.objects.filter(pk__in=list(ids))


# -- sync ---------------------------------------------------------------------


def test_sync_creates_code_and_settings_schedules(declare):
    declare("tests.sched.daily", cron="0 8 * * *", tz="Europe/Moscow")
    settings_schedules = {
        "nightly": {"task": "tests.jobs.add", "interval": 600, "args": [1, 2]}
    }
    with override_settings(BGJOBS={"SCHEDULES": settings_schedules}):
        scheduler.sync(now=NOW)

    daily = Schedule.objects.get(name="tests.sched.daily")
    assert (daily.source, daily.cron, daily.timezone) == (
        "code",
        "0 8 * * *",
        "Europe/Moscow",
    )
    assert daily.next_fire_at == utc(2026, 6, 2, 5)  # 08:00 MSK
    nightly = Schedule.objects.get(name="nightly")
    assert (nightly.source, nightly.interval, nightly.args) == (
        "settings",
        dt.timedelta(minutes=10),
        [1, 2],
    )
    assert nightly.timezone == "UTC"  # settings.TIME_ZONE
    assert nightly.next_fire_at == NOW + dt.timedelta(minutes=10)


def test_sync_updates_disables_removed_and_leaves_admin_schedules_alone(declare):
    declare("tests.sched.a", cron="0 8 * * *")
    scheduler.sync(now=NOW)
    admin_made = make_schedule("by-hand")
    row = Schedule.objects.get(name="tests.sched.a")
    first_next = row.next_fire_at

    scheduler.sync(now=NOW + dt.timedelta(hours=1))  # unchanged: next kept
    row.refresh_from_db()
    assert row.next_fire_at == first_next

    pause_schedules([row.pk])
    scheduler.sync(now=NOW)  # a pause in the admin survives a restart
    row.refresh_from_db()
    assert row.enabled is False

    registry._specs["tests.sched.a"].schedule = Declaration(
        name="tests.sched.a", task="tests.sched.a", cron="0 9 * * *"
    )
    resume_schedules([row.pk], now=NOW)
    scheduler.sync(now=NOW)
    row.refresh_from_db()
    assert (row.cron, row.next_fire_at) == ("0 9 * * *", utc(2026, 6, 2, 9))

    registry._specs.pop("tests.sched.a")
    scheduler.sync(now=NOW)
    row.refresh_from_db()
    assert (row.enabled, row.declared, row.next_fire_at) == (False, False, None)
    admin_made.refresh_from_db()
    assert admin_made.enabled is True


def test_sync_keeps_an_admin_made_schedule_of_the_same_name(declare):
    make_schedule("tests.sched.clash", cron="5 5 * * *")
    declare("tests.sched.clash", cron="0 8 * * *")
    scheduler.sync(now=NOW)
    row = Schedule.objects.get(name="tests.sched.clash")
    assert (row.source, row.cron) == ("admin", "5 5 * * *")


def test_declared_rejects_a_bad_settings_entry():
    with (
        override_settings(BGJOBS={"SCHEDULES": {"x": {"task": "tests.jobs.noop"}}}),
        pytest.raises(InvalidSchedule, match="either a cron expression or an interval"),
    ):
        declared()
    with (
        override_settings(BGJOBS={"SCHEDULES": {"x": {"task": "t", "every": 5}}}),
        pytest.raises(InvalidSchedule, match="has unknown keys \\['every'\\]"),
    ):
        declared()


# -- tick ---------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 2 * * *", "30 1 * * *"])
@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/New_York", dt.date(2026, 3, 8)),
        ("America/New_York", dt.date(2026, 11, 1)),
        ("Europe/Berlin", dt.date(2026, 3, 29)),
        ("Europe/Berlin", dt.date(2026, 10, 25)),
    ],
)
def test_ticks_across_dst_make_one_job_per_calendar_day(cron, zone, day):
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(day - dt.timedelta(days=2), dt.time(12), tz)
    row = make_schedule(cron=cron, timezone=zone, next_fire_at=None, created_at=start)
    row.next_fire_at = row.timetable().next_after(start)
    row.save()
    now = start
    while now < start + dt.timedelta(days=4):
        scheduler.tick(now)
        now += dt.timedelta(minutes=20)

    slots = list(ScheduleSlot.objects.filter(schedule=row).order_by("fire_at"))
    days = [slot.fire_at.astimezone(tz).date() for slot in slots]
    assert days == [day + dt.timedelta(days=n) for n in (-1, 0, 1, 2)]
    assert jobs_of(row).count() == 4


def test_six_concurrent_tickers_fire_each_slot_once(transactional_db):
    row = make_schedule(cron="* * * * * *", next_fire_at=NOW)
    barrier = threading.Barrier(6)
    errors = []

    def ticker(offset):
        try:
            barrier.wait()
            for second in range(10):
                scheduler.tick(NOW + dt.timedelta(seconds=second, milliseconds=offset))
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ticker, args=(n * 10,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    fired = list(
        ScheduleSlot.objects.filter(schedule=row).values_list("fire_at", flat=True)
    )
    assert sorted(fired) == [NOW + dt.timedelta(seconds=s) for s in range(10)]
    assert Job.objects.count() == 10


def test_a_slot_fired_already_never_makes_a_second_job():
    row = make_schedule(next_fire_at=NOW)
    assert scheduler.tick(NOW) == 1
    Schedule.objects.filter(pk=row.pk).update(next_fire_at=NOW)  # as if stale
    assert scheduler.tick(NOW) == 0
    assert Job.objects.count() == 1


@pytest.mark.parametrize(("policy", "jobs"), [("skip", 1), ("all", 10), ("none", 0)])
def test_ten_minutes_down_on_a_per_minute_schedule(policy, jobs):
    # Last fired at 11:50; the worker is back at 12:00:30.
    row = make_schedule(misfire=policy, next_fire_at=utc(2026, 6, 1, 11, 51))
    scheduler.tick(utc(2026, 6, 1, 12, 0, 30))
    assert jobs_of(row).count() == jobs
    row.refresh_from_db()
    assert row.next_fire_at == utc(2026, 6, 1, 12, 1)


def test_misfire_all_stops_at_the_cap():
    row = make_schedule(
        misfire="all", misfire_cap=4, next_fire_at=utc(2026, 6, 1, 11, 51)
    )
    scheduler.tick(utc(2026, 6, 1, 12, 0, 30))
    fired = sorted(
        ScheduleSlot.objects.filter(schedule=row).values_list("fire_at", flat=True)
    )
    assert fired == [
        utc(2026, 6, 1, 11, 57) + dt.timedelta(minutes=n) for n in range(4)
    ]


def test_the_job_takes_the_task_options_and_the_schedule_overrides(declare):
    declare("tests.sched.opts", attempts=7, queue="slow", cron="* * * * *")
    row = make_schedule(
        task="tests.sched.opts", queue="", priority=None, next_fire_at=NOW
    )
    other = make_schedule(
        "s2", task="tests.sched.opts", queue="fast", priority=9, next_fire_at=NOW
    )
    scheduler.tick(NOW)
    job = jobs_of(row).get()
    assert (job.max_attempts, job.queue, job.priority) == (7, "slow", 0)
    job = jobs_of(other).get()
    assert (job.queue, job.priority) == ("fast", 9)


def test_an_unregistered_task_is_logged_and_the_others_still_fire(caplog):
    make_schedule("ghost", task="no.such.task", next_fire_at=NOW)
    row = make_schedule("real", next_fire_at=NOW)
    assert scheduler.tick(NOW) == 1
    assert jobs_of(row).count() == 1
    assert "Task 'no.such.task' is not registered" in caplog.text


def test_run_now_is_enqueued_by_the_next_tick_even_when_paused():
    row = make_schedule(enabled=False)
    result = run_schedules_now([row.pk], now=NOW)
    assert (result.changed, result.skipped) == (1, 0)
    assert run_schedules_now([row.pk]).skipped == 1  # asked already
    assert scheduler.tick(NOW + dt.timedelta(seconds=1)) == 1
    slot = ScheduleSlot.objects.get(schedule=row)
    assert (slot.kind, slot.fire_at) == ("manual", NOW)
    assert Job.objects.filter(pk=slot.job_id).exists()
    row.refresh_from_db()
    assert row.run_requested_at is None
    assert scheduler.tick(NOW + dt.timedelta(seconds=2)) == 0


def test_run_now_beside_a_slot_at_the_same_instant_makes_two_jobs():
    row = make_schedule(next_fire_at=NOW)
    scheduler.run_now(row, now=NOW)
    assert scheduler.tick(NOW) == 1
    assert sorted(ScheduleSlot.objects.values_list("kind", flat=True)) == [
        "manual",
        "slot",
    ]


def test_old_slot_rows_are_pruned_after_a_week():
    row = make_schedule(next_fire_at=NOW)
    ScheduleSlot.objects.create(schedule=row, fire_at=NOW - dt.timedelta(days=8))
    scheduler.tick(NOW)
    assert list(ScheduleSlot.objects.values_list("fire_at", flat=True)) == [NOW]


def test_an_ended_schedule_has_no_next_fire_time():
    row = make_schedule(
        cron="0 * * * *", end_at=utc(2026, 6, 1, 13), next_fire_at=utc(2026, 6, 1, 13)
    )
    scheduler.tick(utc(2026, 6, 1, 13, 0, 1))
    row.refresh_from_db()
    assert (row.last_fire_at, row.next_fire_at) == (utc(2026, 6, 1, 13), None)
    assert row.source == Source.ADMIN


# -- manage.py bgjobs ---------------------------------------------------------


def test_bgjobs_schedules_lists_each_schedule_with_its_next_fire_time():
    make_schedule("nightly", cron="0 2 * * *", timezone="Europe/Berlin")
    make_schedule("often", cron="", interval=dt.timedelta(minutes=10), enabled=False)
    out = io.StringIO()
    call_command("bgjobs", "schedules", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "NAME", "TASK", "EXPRESSION", "ZONE", "STATE", "LAST", "FIRE", "NEXT", "FIRE"
    ]  # fmt: skip
    assert lines[1].startswith("nightly  tests.jobs.noop  0 2 * * *")
    assert lines[1].split()[-4:] == [
        "Europe/Berlin",
        "enabled",
        "-",
        "2026-06-02T00:00:00+00:00",
    ]
    assert "every 0:10:00" in lines[2]
    assert "paused" in lines[2]


def test_bgjobs_trigger_asks_the_next_tick_and_refuses_unknown_names():
    row = make_schedule("nightly")
    out = io.StringIO()
    call_command("bgjobs", "trigger", "nightly", stdout=out)
    assert out.getvalue() == (
        "1 schedule(s) to run at the next tick, 0 already asked: nightly\n"
    )
    row.refresh_from_db()
    assert row.run_requested_at is not None
    with pytest.raises(CommandError, match="No schedule named nope"):
        call_command("bgjobs", "trigger", "nope")
