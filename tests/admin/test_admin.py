"""The admin console through its real views: lists, filters, search, detail
pages, escaping, actions, detail buttons, permissions and query budgets."""

import datetime as dt
import re

import django
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_bgjobs.admin.readonly import EstimatingPaginator
from django_bgjobs.models import Attempt, DeadLetter, Job
from django_bgjobs.services.queries import count_or_estimate, estimated_count
from django_bgjobs.status import AttemptOutcome, JobStatus

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def admin_user(django_user_model):
    """The superuser behind ``admin_client``, without a password: hashing
    one costs about a second per test."""
    user = django_user_model(username="admin", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    return user


def url(name, *args):
    return reverse(f"admin:django_bgjobs_{name}", args=args)


def change_url(model, pk):
    return url(f"{model}_change", pk)


def make_job(**fields):
    values = {
        "task": "tests.jobs.add",
        "queue": "default",
        "status": JobStatus.READY,
        "args": [1, 2],
    }
    values.update(fields)
    return Job.objects.create(**values)


def make_failed_job(**fields):
    values = {
        "status": JobStatus.FAILED,
        "attempt": 3,
        "max_attempts": 3,
        "started_at": T0,
        "finished_at": T0 + dt.timedelta(seconds=2.5),
        "error": "RuntimeError: boom",
    }
    values.update(fields)
    return make_job(**values)


def make_attempt(job, number, outcome=AttemptOutcome.FAILED, **fields):
    values = {
        "worker": "host:1:w1",
        "started_at": T0 + dt.timedelta(seconds=number * 10),
        "finished_at": T0 + dt.timedelta(seconds=number * 10, milliseconds=250),
        "error_class": "RuntimeError",
        "error_message": f"boom {number}",
    }
    values.update(fields)
    return Attempt.objects.create(job=job, number=number, outcome=outcome, **values)


def make_dead_letter(job=None, **fields):
    values = {
        "job": job,
        "task": job.task if job else "tests.jobs.always_fails",
        "queue": job.queue if job else "default",
        "args": job.args if job else [],
        "reason": "RuntimeError: boom",
        "error_class": "RuntimeError",
        "attempts": 3,
        "history": [
            {
                "number": 1,
                "worker": "host:1:w1",
                "started_at": T0.isoformat(),
                "finished_at": (T0 + dt.timedelta(seconds=1.5)).isoformat(),
                "outcome": "failed",
                "error_class": "RuntimeError",
                "error_message": "boom 1",
            }
        ],
    }
    values.update(fields)
    return DeadLetter.objects.create(**values)


def listed(response, model, pk):
    """True if the changelist response links to the row ``pk``."""
    link = re.escape(f'href="{change_url(model, pk)}')
    return re.search(link + '["?]', response.content.decode()) is not None


def post_action(client, model, action, ids, query=""):
    data = {"action": action, "_selected_action": [str(i) for i in ids], "index": 0}
    return client.post(url(f"{model}_changelist") + query, data, follow=True)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def staff_client(*codenames):
    user = User(username="staff", is_staff=True)
    user.set_unusable_password()
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


# -- job list --


def test_job_list_shows_status_queue_task_attempts_created_and_run_time(admin_client):
    job = make_failed_job(queue="emails", attempt=4, uncharged=1, max_attempts=5)
    response = admin_client.get(url("job_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert listed(response, "job", job.pk)
    assert ">Failed</span>" in html
    assert '<td class="field-queue">emails</td>' in html
    assert "tests.jobs.add" in html
    assert ">3/5</span>" in html  # 4 claims, 1 interrupted: 3 charged
    assert "2.5\xa0s" in html
    assert '<td class="field-created">' in html


def test_job_list_leaves_run_time_empty_for_unfinished_jobs(admin_client):
    make_job(status=JobStatus.RUNNING, started_at=T0, attempt=1)
    html = admin_client.get(url("job_changelist")).content.decode()
    assert '<td class="field-run_time">-</td>' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=failed", {"failed"}),
        ("status__exact=ready", {"ready_default", "ready_emails"}),
        ("queue=emails", {"ready_emails"}),
        ("task=tests.jobs.noop", {"noop"}),
        ("queue=default&status__exact=ready", {"ready_default"}),
    ],
)
def test_job_list_filters_by_status_queue_and_task(admin_client, query, expected):
    jobs = {
        "failed": make_failed_job(),
        "ready_default": make_job(),
        "ready_emails": make_job(queue="emails"),
        "noop": make_job(task="tests.jobs.noop", status=JobStatus.SCHEDULED),
    }
    response = admin_client.get(url("job_changelist") + "?" + query)
    assert response.status_code == 200
    shown = {name for name, job in jobs.items() if listed(response, "job", job.pk)}
    assert shown == expected


def test_job_list_filter_offers_the_queues_and_tasks_present(admin_client):
    make_job(queue="emails", task="tests.jobs.noop")
    make_job(queue="reports")
    html = admin_client.get(url("job_changelist")).content.decode()
    for value in ("emails", "reports", "tests.jobs.noop", "tests.jobs.add"):
        assert f'href="?queue={value}"' in html or f'href="?task={value}"' in html
    assert 'href="?status__exact=waiting_children"' in html


@pytest.mark.parametrize("form", ["{id}", "#{id}"])
def test_job_search_finds_a_job_by_id(admin_client, form):
    job, other = make_job(), make_job()
    term = form.format(id=job.pk)
    response = admin_client.get(url("job_changelist"), {"q": term})
    assert listed(response, "job", job.pk)
    assert not listed(response, "job", other.pk)


def test_job_search_finds_a_job_by_exact_key(admin_client):
    job = make_job(key="order-42", active_key="order-42")
    other = make_job(key="order-421")
    response = admin_client.get(url("job_changelist"), {"q": "order-42"})
    assert listed(response, "job", job.pk)
    assert not listed(response, "job", other.pk)


def test_job_search_with_a_word_that_is_no_id_or_key_finds_nothing(admin_client):
    job = make_job()
    response = admin_client.get(url("job_changelist"), {"q": "nothing here"})
    assert response.status_code == 200
    assert not listed(response, "job", job.pk)


# -- job detail --


def test_job_detail_shows_args_result_error_and_attempt_history(admin_client):
    job = make_job(
        status=JobStatus.SUCCEEDED,
        args=[{"order": 42}],
        kwargs={"notify": True},
        result={"total": 99.5},
        error="RuntimeError: first try failed",
        attempt=2,
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=90),
    )
    make_attempt(job, 1, traceback="Traceback (most recent call last):\n  boom")
    make_attempt(job, 2, AttemptOutcome.SUCCEEDED, error_class="", error_message="")
    response = admin_client.get(change_url("job", job.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;order&quot;: 42" in html
    assert "&quot;notify&quot;: true" in html
    assert "&quot;total&quot;: 99.5" in html
    assert "RuntimeError: first try failed" in html
    assert "1\xa0min\xa030\xa0s" in html
    assert "attempt history" in html.lower()
    assert "boom 1" in html
    assert ">Succeeded</span>" in html
    assert "<details><summary" in html
    assert "Traceback (most recent call last):" in html
    assert 'name="_save"' not in html


def test_job_detail_shows_how_its_task_was_declared(admin_client):
    job = make_job()
    html = admin_client.get(change_url("job", job.pk)).content.decode()
    assert "Declared by" in html
    assert "@background" in html
    gone = make_job(task="tests.no_such_task")
    html = admin_client.get(change_url("job", gone.pk)).content.decode()
    assert "not registered in this process" in html


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0+")
def test_job_detail_shows_a_task_came_through_django_tasks(admin_client):
    job = make_job(task="tests.tasks.add")
    html = admin_client.get(change_url("job", job.pk)).content.decode()
    assert "django.tasks (TASKS[&#x27;default&#x27;])" in html


def test_job_list_shows_progress_as_a_bar_or_short_json(admin_client):
    make_job(status=JobStatus.RUNNING, progress=42.5, progress_at=T0)
    make_job(status=JobStatus.RUNNING, progress={"stage": "x" * 60})
    make_job(status=JobStatus.READY)
    html = admin_client.get(url("job_changelist")).content.decode()
    assert '<progress value="42.5" max="100"' in html
    assert "42.5%" in html
    assert "<code>{&quot;stage&quot;: &quot;xxx" in html
    assert "\u2026</code>" in html  # cut short
    assert html.count('<td class="field-progress_bar">-</td>') == 1


def test_job_detail_shows_the_progress_and_when_it_was_written(admin_client):
    job = make_job(
        status=JobStatus.RUNNING, progress={"step": XSS, "done": 4}, progress_at=T0
    )
    html = admin_client.get(change_url("job", job.pk)).content.decode()
    assert "&quot;done&quot;: 4" in html
    assert XSS not in html
    assert XSS_ESCAPED in html
    assert "as of" in html


def test_job_detail_shows_the_limit_key(admin_client):
    job = make_job(limit_key="customer:42")
    html = admin_client.get(change_url("job", job.pk)).content.decode()
    assert "Limit key" in html
    assert "customer:42" in html


def test_job_detail_escapes_markup_in_args_error_and_attempts(admin_client):
    job = make_failed_job(args=[XSS], kwargs={"note": XSS}, error=f"Boom: {XSS}")
    make_attempt(job, 1, error_message=XSS, traceback=f"Traceback\n{XSS}")
    html = admin_client.get(change_url("job", job.pk)).content.decode()
    assert XSS not in html
    assert html.count(XSS_ESCAPED) >= 5  # args, kwargs, error, message, traceback


def test_job_detail_links_its_dead_letter(admin_client):
    job = make_failed_job()
    letter = make_dead_letter(job)
    html = admin_client.get(change_url("job", job.pk)).content.decode()
    assert f'href="{change_url("deadletter", letter.pk)}"' in html
    assert "(pending)" in html


def test_job_detail_refuses_a_form_post(admin_client):
    job = make_job(status=JobStatus.RUNNING, attempt=1)
    response = admin_client.post(change_url("job", job.pk), {"status": "ready"})
    assert response.status_code == 405
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_jobs_cannot_be_added_but_can_be_deleted(admin_client):
    assert admin_client.get(url("job_add")).status_code == 403
    job = make_failed_job()
    make_attempt(job, 1)
    response = admin_client.post(url("job_delete", job.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not Attempt.objects.filter(job_id=job.pk).exists()


# -- attempts --


def test_attempt_list_and_detail_show_runs_with_escaped_traceback(admin_client):
    job = make_failed_job()
    attempt = make_attempt(
        job, 1, error_class="builtins.RuntimeError", traceback=f"Traceback\n{XSS}"
    )
    other = make_attempt(make_failed_job(), 1)
    response = admin_client.get(url("attempt_changelist"), {"q": f"#{job.pk}"})
    assert listed(response, "attempt", attempt.pk)
    assert not listed(response, "attempt", other.pk)
    listing = response.content.decode()
    assert f"#{job.pk} tests.jobs.add" in listing
    assert "builtins.<wbr>RuntimeError" in listing  # may wrap after the dot
    html = admin_client.get(change_url("attempt", attempt.pk)).content.decode()
    assert XSS not in html
    assert XSS_ESCAPED in html
    assert "250\xa0ms" in html


# -- dead letters --


def test_dead_letter_list_shows_pending_ones_unless_asked(admin_client):
    pending = make_dead_letter(make_failed_job())
    copy = make_job()
    requeued = make_dead_letter(
        make_failed_job(), requeued_at=timezone.now(), requeued_job=copy
    )
    by_query = {
        "": {pending.pk},
        "?state=pending": {pending.pk},
        "?state=requeued": {requeued.pk},
        "?state=all": {pending.pk, requeued.pk},
    }
    for query, expected in by_query.items():
        response = admin_client.get(url("deadletter_changelist") + query)
        shown = {
            d.pk for d in (pending, requeued) if listed(response, "deadletter", d.pk)
        }
        assert shown == expected, query
    assert f'as <a href="{change_url("job", copy.pk)}">#{copy.pk}</a>' in (
        response.content.decode()
    )


def test_dead_letter_list_filters_by_error_class_and_finds_by_job_id(admin_client):
    key_error = make_dead_letter(make_failed_job(), error_class="KeyError")
    runtime = make_dead_letter(make_failed_job())
    response = admin_client.get(
        url("deadletter_changelist"), {"error_class": "KeyError"}
    )
    assert listed(response, "deadletter", key_error.pk)
    assert not listed(response, "deadletter", runtime.pk)
    response = admin_client.get(url("deadletter_changelist"), {"q": runtime.job_id})
    assert listed(response, "deadletter", runtime.pk)
    assert not listed(response, "deadletter", key_error.pk)


def test_dead_letter_detail_shows_payload_reason_history_and_links(admin_client):
    job = make_failed_job(args=[XSS])
    copy = make_job()
    letter = make_dead_letter(
        job,
        reason=f"gave up: {XSS}",
        requeued_at=timezone.now(),
        requeued_job=copy,
        history=[
            {
                "number": 1,
                "worker": "host:1:w1",
                "started_at": T0.isoformat(),
                "finished_at": (T0 + dt.timedelta(seconds=1.5)).isoformat(),
                "outcome": "failed",
                "error_class": "RuntimeError",
                "error_message": XSS,
            }
        ],
    )
    html = admin_client.get(change_url("deadletter", letter.pk)).content.decode()
    assert XSS not in html
    assert html.count(XSS_ESCAPED) >= 3  # args, reason, history message
    assert "<th>Error class</th>" in html
    assert "1.5\xa0s" in html
    assert f'href="{change_url("job", job.pk)}"' in html
    assert f'href="{change_url("job", copy.pk)}"' in html


# -- bulk actions --


def test_retry_now_action_readies_waiting_jobs_and_copies_finished_ones(admin_client):
    scheduled = make_job(status=JobStatus.SCHEDULED, run_at=T0 + dt.timedelta(days=1))
    failed = make_failed_job(args=["again"])
    running = make_job(status=JobStatus.RUNNING, attempt=1)
    ids = [scheduled.pk, failed.pk, running.pk]
    response = post_action(admin_client, "job", "retry_now", ids)
    assert response.status_code == 200
    assert messages_of(response)[0].startswith(
        "Retry now: 1 changed, 1 created, 1 skipped. New: <a href="
    )
    scheduled.refresh_from_db()
    assert scheduled.status == JobStatus.READY
    assert scheduled.run_at <= timezone.now()
    copy = Job.objects.exclude(pk__in=ids).get()
    assert (copy.status, copy.args) == (JobStatus.READY, ["again"])
    running.refresh_from_db()
    assert running.status == JobStatus.RUNNING


def test_cancel_action_cancels_waiting_jobs_and_asks_running_ones_to_stop(
    admin_client,
):
    ready = make_job()
    running = make_job(status=JobStatus.RUNNING, attempt=1)
    done = make_job(status=JobStatus.SUCCEEDED, attempt=1)
    ids = [ready.pk, running.pk, done.pk]
    response = post_action(admin_client, "job", "cancel", ids)
    assert messages_of(response) == [
        "Cancel: 1 changed, 0 created, 1 running asked to stop, 1 skipped."
    ]
    ready.refresh_from_db()
    running.refresh_from_db()
    assert (ready.status, running.status) == (JobStatus.CANCELLED, JobStatus.RUNNING)
    assert running.cancel_requested_at is not None
    # The detail page says so, and offers no second request.
    html = admin_client.get(change_url("job", running.pk)).content.decode()
    assert "cancel requested" in html
    assert url("job_cancel", running.pk) not in html
    # Asking again changes nothing.
    response = post_action(admin_client, "job", "cancel", [running.pk])
    assert messages_of(response) == ["Cancel: 0 changed, 0 created, 1 skipped."]


def test_requeue_action_enqueues_a_new_job_per_pending_dead_letter(admin_client):
    pending = make_dead_letter(make_failed_job(args=[7, 8]))
    done = make_dead_letter(make_failed_job(), requeued_at=timezone.now())
    ids = [pending.pk, done.pk]
    # The list shows pending dead letters only unless asked for all.
    response = post_action(admin_client, "deadletter", "requeue", ids, "?state=all")
    assert messages_of(response)[0].startswith(
        "Requeue: 1 changed, 1 created, 1 skipped."
    )
    pending.refresh_from_db()
    assert pending.requeued_job.status == JobStatus.READY
    assert pending.requeued_job.args == [7, 8]
    assert f"#{pending.requeued_job_id}</a>" in messages_of(response)[0]


def test_actions_are_not_offered_without_the_change_permission():
    make_job()
    client = staff_client("view_job")
    html = client.get(url("job_changelist")).content.decode()
    assert 'value="retry_now"' not in html
    assert 'value="cancel"' not in html


# -- detail buttons --


def test_job_page_buttons_retry_and_cancel(admin_client):
    scheduled = make_job(status=JobStatus.SCHEDULED, run_at=T0 + dt.timedelta(days=1))
    html = admin_client.get(change_url("job", scheduled.pk)).content.decode()
    assert f'action="{url("job_retry", scheduled.pk)}"' in html
    assert f'action="{url("job_cancel", scheduled.pk)}"' in html
    response = admin_client.post(url("job_retry", scheduled.pk), follow=True)
    assert messages_of(response) == ["Retry now: 1 changed, 0 created, 0 skipped."]
    assert response.redirect_chain[-1][0] == change_url("job", scheduled.pk)
    scheduled.refresh_from_db()
    assert scheduled.status == JobStatus.READY
    response = admin_client.post(url("job_cancel", scheduled.pk), follow=True)
    assert messages_of(response) == ["Cancel: 1 changed, 0 created, 0 skipped."]
    scheduled.refresh_from_db()
    assert scheduled.status == JobStatus.CANCELLED


def test_job_page_offers_only_cancel_for_a_running_job(admin_client):
    running = make_job(status=JobStatus.RUNNING, attempt=1)
    html = admin_client.get(change_url("job", running.pk)).content.decode()
    assert url("job_retry", running.pk) not in html
    assert f'action="{url("job_cancel", running.pk)}"' in html
    response = admin_client.post(url("job_cancel", running.pk), follow=True)
    assert messages_of(response) == [
        "Cancel: 0 changed, 0 created, 1 running asked to stop, 0 skipped."
    ]
    running.refresh_from_db()
    assert running.status == JobStatus.RUNNING
    assert running.cancel_requested_at is not None


def test_dead_letter_page_button_requeues_it(admin_client):
    letter = make_dead_letter(make_failed_job())
    page = change_url("deadletter", letter.pk)
    assert f'action="{url("deadletter_requeue", letter.pk)}"' in (
        admin_client.get(page).content.decode()
    )
    response = admin_client.post(url("deadletter_requeue", letter.pk), follow=True)
    assert messages_of(response)[0].startswith(
        "Requeue: 1 changed, 1 created, 0 skipped."
    )
    letter.refresh_from_db()
    assert letter.requeued_job.status == JobStatus.READY
    html = admin_client.get(page).content.decode()
    assert url("deadletter_requeue", letter.pk) not in html
    assert ">Requeued</span>" in html


@pytest.mark.parametrize("button", ["job_retry", "job_cancel", "deadletter_requeue"])
def test_buttons_refuse_get(admin_client, button):
    job = make_job(status=JobStatus.SCHEDULED)
    letter = make_dead_letter(make_failed_job())
    pk = letter.pk if button.startswith("dead") else job.pk
    assert admin_client.get(url(button, pk)).status_code == 405
    job.refresh_from_db()
    letter.refresh_from_db()
    assert (job.status, letter.requeued_at) == (JobStatus.SCHEDULED, None)


@pytest.mark.parametrize("button", ["job_retry", "job_cancel", "deadletter_requeue"])
def test_buttons_need_the_change_permission(button):
    job = make_job(status=JobStatus.SCHEDULED)
    letter = make_dead_letter(make_failed_job())
    pk = letter.pk if button.startswith("dead") else job.pk
    client = staff_client("view_job", "view_deadletter", "view_attempt")
    model = "deadletter" if button.startswith("dead") else "job"
    page = client.get(change_url(model, pk))
    assert page.status_code == 200
    assert url(button, pk) not in page.content.decode()
    assert client.post(url(button, pk)).status_code == 403
    job.refresh_from_db()
    letter.refresh_from_db()
    assert (job.status, letter.requeued_at) == (JobStatus.SCHEDULED, None)


def test_buttons_work_with_the_change_permission_alone():
    job = make_job(status=JobStatus.SCHEDULED)
    client = staff_client("change_job")
    assert client.post(url("job_cancel", job.pk)).status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_buttons_need_a_csrf_token(admin_user):
    job = make_job(status=JobStatus.SCHEDULED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(url("job_cancel", job.pk)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.SCHEDULED


def test_button_on_a_missing_row_is_404(admin_client):
    assert admin_client.post(url("job_retry", 987654321)).status_code == 404


# -- query budget --


def fill(model, count):
    for _ in range(count):
        job = make_failed_job(queue=f"q{_ % 3}", task=f"tests.jobs.t{_ % 4}")
        make_attempt(job, 1)
        make_dead_letter(job, error_class=f"E{_ % 2}")


def changelist_queries(client, model):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(f"{model}_changelist"))
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", ["job", "deadletter", "attempt"])
def test_changelist_query_count_does_not_grow_with_rows(admin_client, model):
    fill(model, 5)
    few = changelist_queries(admin_client, model)
    fill(model, 45)
    many = changelist_queries(admin_client, model)
    assert Job.objects.count() == 50
    assert many == few


def test_job_list_query_count_does_not_grow_with_running_jobs(admin_client):
    def running(count, **fields):
        for _ in range(count):
            make_job(status=JobStatus.RUNNING, attempt=1, started_at=T0, **fields)

    running(1)
    running(1, cancel_requested_at=T0)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url("job_changelist"))
    running(20)
    running(20, cancel_requested_at=T0)
    with CaptureQueriesContext(connection) as many:
        html = admin_client.get(url("job_changelist")).content.decode()

    # The status column reads cancel_requested_at of running jobs: it is
    # loaded with the page, not by one query per row.
    assert len(many) == len(few)
    assert html.count("cancel requested") == 21


# -- counts: exact, or the planner's estimate past a threshold --


def pagination_text(html):
    """The count under the list, without the words after it."""
    nav = html[html.index('<nav class="paginator"') :]
    nav = nav[nav.index("</h2>") : nav.index("</nav>")]
    return re.sub(r"<[^>]+>|\s+", " ", nav).split("jobs")[0]


def test_job_list_shows_the_planners_estimate_past_the_threshold(
    admin_client, monkeypatch
):
    for _ in range(30):
        make_failed_job()
    for _ in range(3):
        make_job()
    monkeypatch.setattr(EstimatingPaginator, "estimate_above", 10)
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE bgjobs_job")

    html = admin_client.get(url("job_changelist")).content.decode()
    ready = admin_client.get(url("job_changelist") + "?status__exact=ready")

    # Three ready jobs are under the threshold by any estimate: counted.
    assert pagination_text(ready.content.decode()).split() == ["3"]
    if not postgresql:
        # Other databases have no estimate: the list counts.
        assert pagination_text(html).split() == ["33"]
        assert "about" not in html
        return
    words = pagination_text(html).split()
    assert words[0] == "about"
    estimate = int(words[1].replace(",", ""))
    assert 10 < estimate < 100
    assert f'title="The database\'s estimate, not a count">about {words[1]}<' in html
    assert f"about {words[1]} results" in html  # the search bar's count
    assert f"Select all about {words[1]} jobs" in html


def test_count_or_estimate_counts_below_the_threshold_and_off_postgresql():
    for _ in range(4):
        make_job()
    rows = Job.objects.all()

    assert count_or_estimate(rows, above=1000) == (4, False)
    count, estimated = count_or_estimate(rows, above=0)
    if connection.vendor == "postgresql":
        assert (estimated, count == estimated_count(rows)) == (True, True)
    else:
        assert (count, estimated, estimated_count(rows)) == (4, False, None)
