"""The queues page: every queue with its counts and state, Pause and Resume
per queue and in bulk, through the real admin views."""

import datetime as dt
import re

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_bgjobs.models import QueueState
from django_bgjobs.status import JobStatus
from tests.admin.test_admin import (
    XSS,
    admin_user,  # noqa: F401 (the fixture behind admin_client)
    make_job,
    staff_client,
    url,
)

pytestmark = pytest.mark.django_db


def page():
    return url("queuestate_changelist")


def paused():
    return set(
        QueueState.objects.filter(paused_at__isnull=False).values_list(
            "name", flat=True
        )
    )


def messages_after(client, data):
    response = client.post(page(), data, follow=True)
    assert response.redirect_chain == [(page(), 302)]
    return [str(m) for m in response.context["messages"]]


def test_page_lists_queues_with_and_without_state_rows(admin_client):
    make_job(queue="emails")
    make_job(queue="emails", status=JobStatus.RUNNING)
    make_job(queue="reports", status=JobStatus.FAILED)
    QueueState.objects.create(name="idle")

    response = admin_client.get(page())

    assert response.status_code == 200
    html = response.content.decode()
    for name in ("emails", "reports", "idle"):
        jobs = url("job_changelist") + f"?queue={name}"
        assert f'<th class="field-name"><a href="{jobs}">{name}</a></th>' in html
        assert f'name="pause" value="{name}"' in html
    assert html.count(">Running</span>") == 3
    assert 'name="action" value="resume"' in html
    assert not QueueState.objects.filter(name__in=["emails", "reports"]).exists()


def test_page_counts_unfinished_jobs_and_jobs_finished_in_the_last_24_hours(
    admin_client,
):
    now = timezone.now()
    make_job(queue="emails", status=JobStatus.SUCCEEDED, finished_at=now)
    make_job(
        queue="emails",
        status=JobStatus.SUCCEEDED,
        finished_at=now - dt.timedelta(days=2),
    )
    make_job(queue="emails", status=JobStatus.FAILED, finished_at=now)
    make_job(queue="emails", created_at=now - dt.timedelta(days=30))

    html = admin_client.get(page()).content.decode()

    table = html[html.index('<table id="result_list">') :]
    headers = re.findall(r'<th scope="col">(.*?)</th>', table)
    assert headers[2:9] == [
        "Scheduled",
        "Ready",
        "Waiting for children",
        "Running",
        "Succeeded (24 h)",
        "Failed (24 h)",
        "Cancelled (24 h)",
    ]
    row = html[html.index('<th class="field-name">') :]
    counts = re.findall(r"<td>(\d+)</td>", row[: row.index("</tr>")])
    assert counts == ["0", "1", "0", "0", "1", "1", "0"]


def test_page_shows_each_queues_declared_limits(admin_client):
    make_job(queue="emails")
    make_job(queue="reports")
    queues = {
        "emails": {"rate": "10/s", "key_concurrency": 1, "remove_on_fail": True},
        "exports": {"concurrency": 2, "remove_on_complete": 100},
    }

    with override_settings(BGJOBS={**settings.BGJOBS, "QUEUES": queues}):
        html = admin_client.get(page()).content.decode()

    assert '<th scope="col">Limits</th>' in html
    limits = re.findall(r'<td class="field-limits">(.*?)</td>', html)
    names = re.findall(r'<th class="field-name"><a href="[^"]*">(.*?)</a>', html)
    assert dict(zip(names, limits, strict=True)) == {
        "emails": "rate 10/s, per key concurrency 1; remove failed at once",
        "exports": "concurrency 2; keep completed newest 100",
        "reports": "-",
    }
    # A declared queue without jobs or a state row is listed, with zero
    # counts, and can be paused from its row.
    assert 'name="pause" value="exports"' in html


def test_row_buttons_pause_and_resume_one_queue(admin_client, admin_user):  # noqa: F811
    make_job(queue="emails")

    assert messages_after(admin_client, {"pause": "emails"}) == [
        "1 queue(s) paused, 0 already paused."
    ]
    assert paused() == {"emails"}
    assert QueueState.objects.get(name="emails").paused_by == "admin"
    html = admin_client.get(page()).content.decode()
    assert ">Paused</span> since" in html
    assert "by admin" in html
    assert 'name="resume" value="emails"' in html

    assert messages_after(admin_client, {"resume": "emails"}) == [
        "1 queue(s) resumed, 0 not paused."
    ]
    assert paused() == set()


def test_bulk_actions_pause_and_resume_the_checked_queues(admin_client):
    for name in ("a", "b", "c"):
        make_job(queue=name)

    data = {"action": "pause", "queue": ["a", "b"]}
    assert messages_after(admin_client, data) == [
        "2 queue(s) paused, 0 already paused."
    ]
    assert paused() == {"a", "b"}
    data = {"action": "resume", "queue": ["a", "c"]}
    assert messages_after(admin_client, data) == ["1 queue(s) resumed, 1 not paused."]
    assert paused() == {"b"}


def test_a_post_without_queues_or_with_a_bad_name_changes_nothing(admin_client):
    assert messages_after(admin_client, {"action": "pause"}) == [
        "Select queues, then an action."
    ]
    assert messages_after(admin_client, {"action": "drop", "queue": ["a"]}) == [
        "Select queues, then an action."
    ]
    [message] = messages_after(admin_client, {"pause": XSS})
    assert message.startswith("Invalid queue name '<script>")
    assert not QueueState.objects.exists()


def test_a_queue_name_is_escaped_on_the_page(admin_client):
    # Job rows accept any queue text; the page must show it as text.
    make_job(queue=XSS)
    html = admin_client.get(page()).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;" in html


def test_view_permission_sees_the_page_without_buttons_and_cannot_post():
    make_job(queue="emails")
    viewer = staff_client("view_queuestate")

    response = viewer.get(page())

    assert response.status_code == 200
    html = response.content.decode()
    assert '">emails</a></th>' in html
    assert 'name="pause"' not in html
    assert viewer.post(page(), {"pause": "emails"}).status_code == 403
    assert paused() == set()


def test_change_permission_can_pause():
    changer = staff_client("change_queuestate")
    assert changer.post(page(), {"pause": "emails"}).status_code == 302
    assert paused() == {"emails"}


def test_no_permission_no_page():
    stranger = staff_client()
    assert stranger.get(page()).status_code == 403


def test_queues_appear_in_the_app_index(admin_client):
    html = admin_client.get("/admin/django_bgjobs/").content.decode()
    assert f'href="{page()}"' in html
    assert ">Queues<" in html


def test_page_queries_do_not_grow_with_the_number_of_queues(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_page():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(page()).status_code == 200
        return len(captured)

    make_job(queue="q0")
    few = queries_for_page()
    for n in range(1, 12):
        make_job(queue=f"q{n}")
    QueueState.objects.create(name="only-state", paused_at=None)
    assert queries_for_page() == few
