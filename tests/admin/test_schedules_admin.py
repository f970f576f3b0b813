"""The schedules page: list, a form that rejects bad input with form errors,
next fire times in the zone and in UTC, pause, resume and run now."""

import datetime as dt

import pytest
from django.utils import timezone

from django_bgjobs.models import Job, Schedule, ScheduleSlot, Source
from tests.admin.test_admin import (
    XSS,
    XSS_ESCAPED,
    admin_user,  # noqa: F401 (the fixture behind admin_client)
    change_url,
    messages_of,
    post_action,
    url,
)

pytestmark = pytest.mark.django_db


def make_schedule(name="nightly", **fields):
    fields.setdefault("task", "tests.jobs.noop")
    fields.setdefault("cron", "0 2 * * *")
    fields.setdefault("timezone", "Europe/Berlin")
    row = Schedule(name=name, **fields)
    row.next_fire_at = row.timetable().next_after(timezone.now())
    row.save()
    return row


def form_data(**changes):
    data = {
        "name": "report",
        "task": "tests.jobs.add",
        "cron": "30 1 * * *",
        "interval": "",
        "timezone": "America/New_York",
        "args": "[1, 2]",
        "kwargs": "{}",
        "queue": "",
        "priority": "",
        "enabled": "on",
        "misfire": "skip",
        "misfire_cap": "100",
        "misfire_grace": "10",
    }
    data.update(changes)
    return data


def test_list_shows_name_task_expression_zone_and_next_fire(admin_client):
    make_schedule(name=XSS)
    make_schedule(name="every", cron="", interval=dt.timedelta(minutes=10))
    html = admin_client.get(url("schedule_changelist")).content.decode()
    assert XSS_ESCAPED in html
    assert XSS not in html
    assert "0 2 * * *" in html
    assert "every 0:10:00" in html
    assert "Europe/Berlin" in html
    assert 'class="field-next_fire"' in html


def test_add_form_saves_a_schedule_with_its_next_fire_time(admin_client):
    response = admin_client.post(url("schedule_add"), form_data(), follow=True)
    assert response.status_code == 200
    row = Schedule.objects.get(name="report")
    assert (row.source, row.args, row.timezone) == (
        Source.ADMIN,
        [1, 2],
        "America/New_York",
    )
    assert row.next_fire_at > timezone.now()
    assert row.timetable().next_after(timezone.now()) == row.next_fire_at


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"cron": "61 * * * *"},
            "cron",
            "Invalid cron expression &#x27;61 * * * *&#x27;",
        ),
        ({"cron": "* * *"}, "cron", "has 3 fields"),
        (
            {"timezone": "Mars/Olympus"},
            "timezone",
            "Unknown time zone &#x27;Mars/Olympus&#x27;",
        ),
        ({"cron": "", "interval": "0"}, "interval", "Interval must be more than 0"),
        (
            {"task": "no.such.task"},
            "task",
            "Task &#x27;no.such.task&#x27; is not registered",
        ),
        ({"cron": "", "interval": ""}, "cron", "Give a cron expression or an interval"),
        ({"queue": "bad queue"}, None, "invalid queue name"),
    ],
)
def test_add_form_rejects_bad_input_with_a_form_error(
    admin_client, changes, field, message
):
    response = admin_client.post(url("schedule_add"), form_data(**changes))
    assert response.status_code == 200  # the form again, with errors
    form = response.context["adminform"].form
    errors = form.errors.get(field or "__all__")
    assert errors, form.errors
    assert message in response.content.decode()
    assert not Schedule.objects.filter(name="report").exists()


def test_change_page_shows_the_next_five_fire_times_in_the_zone_and_utc(admin_client):
    row = make_schedule()
    html = admin_client.get(change_url("schedule", row.pk)).content.decode()
    assert "next 5 fire times" in html.lower()
    upcoming = row.timetable().upcoming(timezone.now(), 5)
    for instant in upcoming:
        assert instant.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in html
    assert html.count(" 02:00:00 CE") == 5  # CET or CEST, by the date


def test_declared_schedule_fields_are_read_only(admin_client):
    row = make_schedule(source=Source.CODE, declared=True)
    response = admin_client.get(change_url("schedule", row.pk))
    form = response.context["adminform"].form
    assert "cron" not in form.fields
    assert "enabled" in form.fields


def test_pause_resume_and_run_now_actions(admin_client):
    row = make_schedule()
    response = post_action(admin_client, "schedule", "pause", [row.pk])
    assert messages_of(response) == ["Pause: 1 changed, 0 created, 0 skipped."]
    row.refresh_from_db()
    assert (row.enabled, row.next_fire_at) == (False, None)

    response = post_action(admin_client, "schedule", "resume", [row.pk])
    assert messages_of(response) == ["Resume: 1 changed, 0 created, 0 skipped."]
    row.refresh_from_db()
    assert row.enabled
    assert row.next_fire_at > timezone.now()

    response = post_action(admin_client, "schedule", "run_now", [row.pk])
    assert messages_of(response) == ["Run now: 1 changed, 0 created, 0 skipped."]
    row.refresh_from_db()
    assert row.run_requested_at is not None


def test_editing_the_arguments_keeps_a_due_fire_time_and_a_new_cron_moves_it(
    admin_client,
):
    row = make_schedule(name="report", task="tests.jobs.add", args=[1, 2])
    due = timezone.now() - dt.timedelta(seconds=1)
    Schedule.objects.filter(pk=row.pk).update(next_fire_at=due)
    data = form_data(args="[3, 4]", cron="0 2 * * *", timezone="Europe/Berlin")
    admin_client.post(change_url("schedule", row.pk), data)
    row.refresh_from_db()
    assert (row.args, row.next_fire_at) == ([3, 4], due)

    admin_client.post(change_url("schedule", row.pk), {**data, "cron": "0 3 * * *"})
    row.refresh_from_db()
    assert row.next_fire_at == row.timetable().next_after(timezone.now())


def test_change_page_lists_the_latest_fires_with_links_to_their_jobs(admin_client):
    row = make_schedule()
    job = Job.objects.create(task="tests.jobs.noop")
    ScheduleSlot.objects.create(schedule=row, fire_at=timezone.now(), job_id=job.pk)
    ScheduleSlot.objects.create(
        schedule=row, kind="manual", fire_at=timezone.now(), job_id=None
    )
    html = admin_client.get(change_url("schedule", row.pk)).content.decode()
    assert f'href="{change_url("job", job.pk)}">#{job.pk}</a>' in html
    assert "Run now" in html
    assert "Fire time" in html
