"""Real ``runworkers`` supervisors ticking schedules: one job per fire time
whatever the number of workers, and the misfire policies at start-up."""

import datetime as dt
import os
import signal
import time

import pytest
from django.utils import timezone

from django_bgjobs.models import Job, Schedule, ScheduleSlot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def make_schedule(name, cron, **fields):
    row = Schedule(
        name=name, task="tests.jobs.noop", cron=cron, timezone="UTC", **fields
    )
    if row.next_fire_at is None:
        row.next_fire_at = row.timetable().next_after(timezone.now())
    row.save()
    return row


def stop(processes):
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


@pytest.mark.postgresql
def test_three_supervisors_fire_an_every_second_schedule_once_per_second(
    start_worker_with, wait_until
):
    row = make_schedule("every-second", "* * * * * *")
    workers = [
        start_worker_with("--processes", "1", "--concurrency", "2") for _ in range(3)
    ]
    wait_until(
        lambda: ScheduleSlot.objects.filter(schedule=row).exists(),
        timeout=30,
        message="the first slot",
    )
    time.sleep(20)
    stop(workers)

    slots = list(ScheduleSlot.objects.filter(schedule=row).order_by("fire_at"))
    seconds = [slot.fire_at for slot in slots]
    first, last = seconds[0], seconds[-1]
    expected = [
        first + dt.timedelta(seconds=n) for n in range((last - first).seconds + 1)
    ]
    assert seconds == expected, "a gap or a doubled second"
    assert len(seconds) >= 19
    jobs = Job.objects.filter(task="tests.jobs.noop")
    assert jobs.count() == len(slots)
    assert sorted(jobs.values_list("pk", flat=True)) == sorted(s.job_id for s in slots)
    created = dict(jobs.values_list("pk", "created_at"))
    lags = sorted((created[s.job_id] - s.fire_at).total_seconds() for s in slots)
    print(
        f"slots={len(slots)} span={(last - first).total_seconds():.0f}s "
        f"lag p50={lags[len(lags) // 2]:.3f}s max={lags[-1]:.3f}s"
    )


def test_a_worker_back_after_ten_minutes_applies_each_misfire_policy(
    start_worker_with, wait_until
):
    now = timezone.now()
    if now.second >= 45:  # keep the ten missed minutes ten
        time.sleep(61 - now.second)
        now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    down_since = minute - dt.timedelta(minutes=9)
    rows = {
        policy: make_schedule(
            f"per-minute-{policy}",
            "* * * * *",
            misfire=policy,
            misfire_grace=0,
            last_fire_at=down_since - dt.timedelta(minutes=1),
            next_fire_at=down_since,
        )
        for policy in ("skip", "all", "none")
    }
    worker = start_worker_with("--processes", "1")
    wait_until(
        lambda: Schedule.objects.get(pk=rows["none"].pk).next_fire_at > minute,
        timeout=30,
        message="the first tick",
    )
    stop([worker])

    counts = {
        p: ScheduleSlot.objects.filter(schedule=r).count() for p, r in rows.items()
    }
    assert counts == {"skip": 1, "all": 10, "none": 0}
    assert Job.objects.count() == 11
