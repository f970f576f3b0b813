"""Fire times with a controllable clock: the DST rule, intervals, misfire
policies, and croniter's own lists as the reference where they agree."""

import datetime as dt
import zoneinfo

import pytest
from croniter import croniter

from django_bgjobs.exceptions import InvalidSchedule
from django_bgjobs.timetable import (
    Timetable,
    due,
    to_instant,
    validate_cron,
    validate_interval,
    validate_misfire,
    validate_zone,
)

UTC = dt.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
#: The DST changes of 2026: (zone, local day of the change).
CHANGES = [
    ("America/New_York", dt.date(2026, 3, 8)),
    ("America/New_York", dt.date(2026, 11, 1)),
    ("Europe/Berlin", dt.date(2026, 3, 29)),
    ("Europe/Berlin", dt.date(2026, 10, 25)),
]


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


def fires_by_ticking(table, start, end, step):
    """Fire ``table`` as a worker would, ticking every ``step`` from
    ``start`` to ``end``; return the fired slots."""
    fired = []
    next_fire_at = table.next_after(start)
    now = start
    while now <= end:
        if next_fire_at is not None and next_fire_at <= now:
            plan = due(table, next_fire_at, now, "all")
            fired += plan.slots
            next_fire_at = plan.next_fire_at
        now += step
    return fired


@pytest.mark.parametrize("cron", ["0 2 * * *", "30 1 * * *"])
@pytest.mark.parametrize(("zone", "day"), CHANGES)
def test_daily_cron_fires_once_per_calendar_day_across_dst(cron, zone, day):
    table = Timetable(cron=cron, zone=zone)
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(day - dt.timedelta(days=3), dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=4), dt.time(), tz)
    fired = fires_by_ticking(table, start, end, dt.timedelta(minutes=7))

    days = [slot.astimezone(tz).date() for slot in fired]
    assert days == [day + dt.timedelta(days=n) for n in range(-3, 4)]
    assert len(set(fired)) == len(fired)


def test_spring_forward_fires_a_missing_wall_time_at_the_first_valid_instant():
    # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    table = Timetable(cron="0 2 * * *", zone="America/New_York")
    assert table.next_after(utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 7)
    half = Timetable(cron="30 2 * * *", zone="America/New_York")
    assert half.next_after(utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 7)
    assert half.next_after(utc(2026, 3, 8, 7)) == utc(2026, 3, 9, 6, 30)


def test_fall_back_fires_an_ambiguous_wall_time_once_at_its_first_occurrence():
    # 2026-11-01 in New York: 01:30 happens at 05:30 UTC (EDT) and 06:30 (EST).
    table = Timetable(cron="30 1 * * *", zone="America/New_York")
    assert table.next_after(utc(2026, 10, 31, 12)) == utc(2026, 11, 1, 5, 30)
    assert table.next_after(utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 2, 6, 30)
    # 2026-10-25 in Berlin: 02:00 CEST (00:00 UTC), not 02:00 CET.
    berlin = Timetable(cron="0 2 * * *", zone="Europe/Berlin")
    assert berlin.next_after(utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0)
    assert berlin.next_after(utc(2026, 10, 25, 0)) == utc(2026, 10, 26, 1)


def test_croniter_itself_fires_the_doubled_hour_twice_which_the_rule_does_not():
    # croniter 7 on an aware start: both 01:30s (the reason for our own rule).
    start = dt.datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)
    theirs = croniter("30 1 * * *", start)
    first, second = theirs.get_next(dt.datetime), theirs.get_next(dt.datetime)
    assert (first.astimezone(UTC), second.astimezone(UTC)) == (
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6, 30),
    )
    ours = Timetable(cron="30 1 * * *", zone="America/New_York")
    assert ours.upcoming(start, 2) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def croniter_list(expression, zone, start, end):
    iterator = croniter(expression, start.astimezone(zoneinfo.ZoneInfo(zone)))
    found = []
    while (slot := iterator.get_next(dt.datetime).astimezone(UTC)) <= end:
        found.append(slot)
    return found


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("UTC", utc(2026, 6, 1)),
        ("Europe/Berlin", utc(2026, 6, 1)),
        ("America/New_York", utc(2026, 3, 7, 12)),  # across the spring gap
        ("Europe/Berlin", utc(2026, 3, 28, 12)),
    ],
)
def test_every_15_minutes_gives_exactly_the_slots_croniter_lists(zone, start):
    end = start + dt.timedelta(days=2)
    table = Timetable(cron="*/15 * * * *", zone=zone)
    fired = fires_by_ticking(table, start, end, dt.timedelta(minutes=4))

    assert fired == croniter_list("*/15 * * * *", zone, start, end)
    assert len(fired) > 180


def test_every_15_minutes_skips_the_second_pass_of_the_doubled_hour():
    table = Timetable(cron="*/15 * * * *", zone="America/New_York")
    slots = table.upcoming(utc(2026, 11, 1, 5, 40), 3)
    assert slots == [
        utc(2026, 11, 1, 5, 45),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 7, 15),
    ]


def test_six_fields_read_seconds_last_as_croniter_does():
    table = Timetable(cron="* * * * * */20", zone="UTC")
    assert table.upcoming(utc(2026, 1, 1), 3) == [
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 40),
        utc(2026, 1, 1, 0, 1, 0),
    ]


def test_macros_are_accepted():
    assert Timetable(cron="@daily", zone="Europe/Berlin").next_after(
        utc(2026, 6, 1, 12)
    ) == utc(2026, 6, 1, 22)


def test_to_instant_of_a_wall_time_in_a_gap_is_the_jump():
    wall = dt.datetime(2026, 3, 29, 2, 30)
    assert to_instant(wall, BERLIN) == utc(2026, 3, 29, 1)
    assert to_instant(dt.datetime(2026, 3, 29, 3, 0), BERLIN) == utc(2026, 3, 29, 1)


def test_interval_is_an_absolute_duration_across_dst():
    anchor = utc(2026, 3, 8, 5)
    table = Timetable(
        interval=dt.timedelta(hours=1), zone="America/New_York", anchor=anchor
    )
    assert table.upcoming(anchor, 3) == [
        utc(2026, 3, 8, 6),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 8),
    ]
    assert table.next_after(utc(2026, 3, 8, 6, 30)) == utc(2026, 3, 8, 7)


def test_start_and_end_bound_the_fire_times():
    table = Timetable(
        cron="0 * * * *", zone="UTC", start=utc(2026, 1, 1, 5), end=utc(2026, 1, 1, 7)
    )
    assert table.upcoming(utc(2026, 1, 1), 5) == [
        utc(2026, 1, 1, 5),
        utc(2026, 1, 1, 6),
        utc(2026, 1, 1, 7),
    ]


@pytest.mark.parametrize(
    ("policy", "count", "first"),
    [
        ("skip", 1, utc(2026, 1, 1, 10, 10)),
        ("all", 10, utc(2026, 1, 1, 10, 1)),
        ("none", 0, None),
    ],
)
def test_misfire_after_ten_minutes_down(policy, count, first):
    # Last fired 10:00; back at 10:10:30, past the 10 s grace of 10:10.
    table = Timetable(cron="* * * * *", zone="UTC")
    plan = due(table, utc(2026, 1, 1, 10, 1), utc(2026, 1, 1, 10, 10, 30), policy)
    assert len(plan.slots) == count
    assert (plan.slots[0] if plan.slots else None) == first
    assert plan.missed == 10 - count
    assert plan.next_fire_at == utc(2026, 1, 1, 10, 11)


def test_misfire_all_keeps_the_latest_cap_slots_and_on_time_slots_always_fire():
    table = Timetable(cron="* * * * *", zone="UTC")
    plan = due(table, utc(2026, 1, 1, 10, 1), utc(2026, 1, 1, 10, 10, 5), "all", cap=3)
    assert plan.slots == [
        utc(2026, 1, 1, 10, 7),
        utc(2026, 1, 1, 10, 8),
        utc(2026, 1, 1, 10, 9),
        utc(2026, 1, 1, 10, 10),  # 5 s late: within the grace
    ]
    assert plan.missed == 6
    none = due(table, utc(2026, 1, 1, 10, 10), utc(2026, 1, 1, 10, 10, 5), "none")
    assert none.slots == [utc(2026, 1, 1, 10, 10)]


def test_a_week_down_on_an_every_second_schedule_does_not_walk_every_slot():
    table = Timetable(cron="* * * * * *", zone="UTC")
    plan = due(table, utc(2026, 1, 1), utc(2026, 1, 8), "all", cap=100, grace=0)
    assert len(plan.slots) == 101  # 100 missed and the one due now
    assert plan.slots[-1] == utc(2026, 1, 8)
    assert plan.slots[0] == utc(2026, 1, 7, 23, 58, 20)
    assert plan.missed > 600_000


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: validate_cron("61 * * * *"),
            "Invalid cron expression '61 \\* \\* \\* \\*'",
        ),
        (lambda: validate_cron("* * *"), "has 3 fields; use 5"),
        (lambda: validate_cron("* * * * * * *"), "has 7 fields"),
        (lambda: validate_cron("@hourlyy"), "Invalid cron expression '@hourlyy'"),
        (lambda: validate_cron("0 0 30 2 *"), "failed to find next date"),
        (lambda: validate_zone("Mars/Olympus"), "Unknown time zone 'Mars/Olympus'"),
        (lambda: validate_interval(0), "Interval must be more than 0"),
        (lambda: validate_interval(-5), "Interval must be more than 0"),
        (
            lambda: validate_interval("10 minutes"),
            "Interval must be seconds or a timedelta",
        ),
        (lambda: validate_misfire("later", 1, 1), "Misfire policy must be one of"),
        (lambda: validate_misfire("all", 0, 1), "misfire_cap must be an integer >= 1"),
        (
            lambda: Timetable(cron="* * * * *", interval=dt.timedelta(1)).validate(),
            "either a cron expression or an interval",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_it(call, message):
    with pytest.raises(InvalidSchedule, match=message):
        call()
