"""The demo shop in testproject: its views answer at once and leave the work
to jobs enqueued in their transaction; its jobs do that work, once."""

import importlib
import io
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import Client, override_settings

from django_bgjobs import JobStatus, Permanent
from django_bgjobs.models import DeadLetter, Job
from testproject.shop import tasks
from testproject.shop.actions import place_order, register_user
from testproject.shop.models import ExternalCall, Order, Product
from testproject.shop.outside import ServiceUnavailable

ROOT = Path(__file__).resolve().parent.parent
EXCERPT = re.compile(r"```python\n# (testproject/\S+\.py)\n(.*?)```", re.DOTALL)
SIGNUP_TASKS = [
    "send_welcome_email",
    "generate_thumbnail",
    "notify_crm",
    "update_analytics",
]


def short_tasks(**filters):
    """Return the short task names of the jobs, in the order enqueued."""
    rows = Job.objects.filter(**filters).order_by("id").values_list("task", flat=True)
    return [task.rsplit(".", 1)[-1] for task in rows]


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


def signup(client, username="ann", **extra):
    data = {"username": username, "email": f"{username}@example.com", **extra}
    return post_json(client, "/signup", data)


@pytest.fixture(autouse=True)
def catalogue(request):
    """Seed the products that the shop's data migration makes.

    A transactional test elsewhere flushes every table, migrated rows too.
    """
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("_django_db_helper")
    seed = importlib.import_module("testproject.shop.migrations.0002_products")
    for sku, name, price, stock in seed.PRODUCTS:
        Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "price": price, "stock": stock}
        )


def order(client, items, email="buyer@example.com"):
    return post_json(client, "/orders", {"email": email, "items": items})


@pytest.mark.django_db
def test_signup_creates_user_and_enqueues_four_jobs_without_running_them(
    client, mailoutbox
):
    response = signup(client, avatar_url="https://example.com/ann.png")

    assert response.status_code == 201
    body = response.json()
    user = User.objects.get(username="ann")
    assert body["id"] == user.pk
    jobs = Job.objects.filter(pk__in=body["jobs"]).order_by("id")
    assert [job.id for job in jobs] == body["jobs"]
    assert short_tasks(pk__in=body["jobs"]) == SIGNUP_TASKS
    assert {job.status for job in jobs} == {JobStatus.READY}
    assert all(job.args == [user.pk] for job in jobs)
    assert mailoutbox == []
    assert user.profile.thumbnail == ""
    assert not ExternalCall.objects.exists()


@pytest.mark.django_db
def test_signup_without_password_leaves_it_unusable(client):
    assert signup(client).status_code == 201
    assert not User.objects.get(username="ann").has_usable_password()


@pytest.mark.django_db
def test_taken_username_answers_409_and_enqueues_nothing_more(client):
    assert signup(client).status_code == 201

    response = signup(client)

    assert response.status_code == 409
    assert response.json() == {"error": "the username 'ann' is taken"}
    assert User.objects.filter(username="ann").count() == 1
    assert Job.objects.count() == 4


@pytest.mark.django_db
def test_signup_jobs_vanish_with_a_rolled_back_transaction():
    def sign_up_then_fail():
        with transaction.atomic():
            register_user("bob", "bob@example.com")
            assert Job.objects.count() == 4
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        sign_up_then_fail()

    assert not User.objects.filter(username="bob").exists()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_signup_rejects_bad_input(client):
    missing = post_json(client, "/signup", {"username": "ann"})
    assert missing.status_code == 400
    assert "email" in missing.json()["fields"]

    broken = client.post("/signup", "{", content_type="application/json")
    assert broken.status_code == 400
    assert broken.json() == {"error": "the body is not valid JSON"}
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_signup_form_needs_the_csrf_token_but_json_does_not():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/signup")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content
    form = {"username": "ann", "email": "ann@example.com"}

    assert client.post("/signup", form).status_code == 403
    assert not User.objects.exists()

    token = page.cookies["csrftoken"].value
    with_token = client.post("/signup", {**form, "csrfmiddlewaretoken": token})
    assert with_token.status_code == 201
    assert len(with_token.json()["jobs"]) == 4
    assert signup(client, username="bob").status_code == 201


@pytest.mark.django_db
def test_signup_jobs_run_inline_send_the_welcome_email_once(client, mailoutbox):
    user_id = signup(client).json()["id"]

    for name in SIGNUP_TASKS:
        getattr(tasks, name)(user_id)
    tasks.send_welcome_email(user_id)

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ann@example.com"]
    assert mailoutbox[0].subject == "Welcome to the demo shop"
    profile = User.objects.get(pk=user_id).profile
    assert profile.welcomed_at is not None
    assert profile.thumbnail.startswith("<svg")
    assert ">A</text>" in profile.thumbnail
    keys = set(ExternalCall.objects.values_list("key", flat=True))
    assert keys == {f"crm:user:{user_id}", f"analytics:signup:{user_id}"}


@pytest.mark.django_db
def test_order_pipeline_runs_inline_step_by_step(client, mailoutbox):
    response = order(client, [{"sku": "mug", "qty": 2}, {"sku": "sticker", "qty": 1}])
    assert response.status_code == 201
    assert response.json()["total"] == "28.50"
    order_id = response.json()["id"]
    assert short_tasks() == ["validate_order"]
    stock = dict(Product.objects.values_list("sku", "stock"))

    tasks.validate_order(order_id)
    assert Order.objects.get(pk=order_id).status == Order.Status.VALIDATED
    charge = Job.objects.get(task=tasks.charge_payment.name)
    assert charge.key == f"payment:{order_id}"

    tasks.charge_payment(order_id)
    paid = Order.objects.get(pk=order_id)
    assert paid.status == Order.Status.PAID
    assert (
        paid.payment_id == ExternalCall.objects.get(key=f"payment:{order_id}").reference
    )

    tasks.reserve_inventory(order_id)
    assert Product.objects.get(sku="mug").stock == stock["mug"] - 2
    assert Product.objects.get(sku="sticker").stock == stock["sticker"] - 1
    assert short_tasks()[-2:] == ["send_confirmation_email", "notify_warehouse"]
    assert Job.objects.get(task=tasks.notify_warehouse.name).kwargs == {
        "channel": "webhook"
    }

    tasks.send_confirmation_email(order_id)
    assert Order.objects.get(pk=order_id).status == Order.Status.RESERVED
    tasks.notify_warehouse(order_id, channel="webhook")
    assert Order.objects.get(pk=order_id).status == Order.Status.COMPLETED
    assert [m.subject for m in mailoutbox] == [f"Order #{order_id} confirmed"]


@pytest.mark.django_db
def test_charge_payment_charges_once_however_often_it_runs():
    order_obj, _ = place_order("buyer@example.com", [{"sku": "mug", "qty": 1}])
    tasks.validate_order(order_obj.pk)
    again = tasks.charge_payment.enqueue(order_obj.pk)
    assert not again.created

    tasks.charge_payment(order_obj.pk)
    tasks.charge_payment(order_obj.pk)

    assert ExternalCall.objects.filter(service="payments").count() == 1
    assert short_tasks().count("reserve_inventory") == 1


@pytest.mark.django_db
@override_settings(SHOP_PAYMENT_FAILURE_RATE=1.0)
def test_payment_gateway_outage_raises_and_changes_nothing():
    order_obj, _ = place_order("buyer@example.com", [{"sku": "mug", "qty": 1}])
    tasks.validate_order(order_obj.pk)

    with pytest.raises(ServiceUnavailable, match="payment gateway did not answer"):
        tasks.charge_payment(order_obj.pk)

    assert Order.objects.get(pk=order_obj.pk).status == Order.Status.VALIDATED
    assert not ExternalCall.objects.exists()
    assert "reserve_inventory" not in short_tasks()


@pytest.mark.django_db
def test_empty_order_is_rejected_without_retries():
    order_obj, _ = place_order("buyer@example.com", [])

    with pytest.raises(Permanent, match="the order has no items"):
        tasks.validate_order(order_obj.pk)

    rejected = Order.objects.get(pk=order_obj.pk)
    assert rejected.status == Order.Status.REJECTED
    assert rejected.problem == "the order has no items"
    assert short_tasks() == ["validate_order"]


@pytest.mark.django_db
def test_order_beyond_the_stock_is_put_on_hold():
    order_obj, _ = place_order("buyer@example.com", [{"sku": "poster", "qty": 1000}])
    tasks.validate_order(order_obj.pk)
    tasks.charge_payment(order_obj.pk)

    with pytest.raises(
        Permanent, match=r"out of stock: poster \(wanted 1000, 3 left\)"
    ):
        tasks.reserve_inventory(order_obj.pk)

    assert Order.objects.get(pk=order_obj.pk).status == Order.Status.ON_HOLD
    assert Product.objects.get(sku="poster").stock == 3
    assert "send_confirmation_email" not in short_tasks()


@pytest.mark.django_db
def test_orders_endpoint_checks_the_shape_of_items(client):
    not_a_list = order(client, "mug")
    assert not_a_list.status_code == 400
    assert not_a_list.json()["error"].startswith("items must be a list")
    bad_line = order(client, [{"sku": 1, "qty": 1}])
    assert bad_line.status_code == 400
    assert bad_line.json()["error"].startswith("items[0] must look like")
    assert not Order.objects.exists()

    form = client.post("/orders", {"email": "b@example.com", "sku": "mug", "qty": "3"})

    assert form.status_code == 201
    assert Order.objects.get().items == [{"sku": "mug", "qty": 3}]


@pytest.mark.django_db
def test_flaky_call_fails_at_the_given_rate():
    with pytest.raises(ServiceUnavailable, match="flaky service did not answer"):
        tasks.flaky_external_call("down", failure_rate=1.0)

    result = tasks.flaky_external_call("up", failure_rate=0.0)

    assert result == {"reference": ExternalCall.objects.get(key="flaky:up").reference}


@pytest.mark.django_db
def test_home_page_shows_the_jobs_and_where_to_go(client):
    signup(client)

    page = client.get("/")

    assert page.status_code == 200
    assert b"testproject.shop.tasks.send_welcome_email" in page.content
    assert b'href="/admin/"' in page.content
    assert b'action="/orders"' in page.content


@pytest.mark.django_db
def test_demo_command_enqueues_signups_orders_and_flaky_calls():
    out = io.StringIO()

    call_command("demo", signups=2, orders=1, flaky=2, url="", stdout=out)

    assert User.objects.filter(profile__isnull=False).count() == 2
    assert short_tasks().count("send_welcome_email") == 2
    assert Order.objects.count() == 3  # one good, one empty, one beyond the stock
    assert short_tasks().count("flaky_external_call") == 3
    failure_rates = [
        job.kwargs["failure_rate"]
        for job in Job.objects.filter(task=tasks.flaky_external_call.name)
    ]
    assert sorted(failure_rates) == [0.5, 0.5, 1.0]
    assert "(no items: rejected)" in out.getvalue()
    assert "Where to look" not in out.getvalue()


def test_tutorial_excerpts_are_copied_from_the_demo_source():
    excerpts = EXCERPT.findall((ROOT / "docs" / "tutorial.md").read_text())

    assert len(excerpts) >= 4
    for path, code in excerpts:
        source = (ROOT / path).read_text()
        assert code in source, f"docs/tutorial.md has an outdated excerpt of {path}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_signup_and_order_run_to_the_end_on_real_workers(client, run_worker):
    user_id = signup(client).json()["id"]
    order_id = order(client, [{"sku": "t-shirt", "qty": 2}]).json()["id"]

    result = run_worker("--processes", "1", "--concurrency", "4")

    assert result.returncode == 0, result.stderr
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    assert sorted(short_tasks()) == sorted(
        [
            *SIGNUP_TASKS,
            "validate_order",
            "charge_payment",
            "reserve_inventory",
            "send_confirmation_email",
            "notify_warehouse",
        ]
    )
    done = Order.objects.get(pk=order_id)
    assert done.status == Order.Status.COMPLETED
    assert done.confirmation_sent_at is not None
    assert User.objects.get(pk=user_id).profile.welcomed_at is not None
    assert ExternalCall.objects.filter(key=f"payment:{order_id}").count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_failures_end_in_dead_letters_on_real_workers(client, run_worker):
    empty_id = order(client, []).json()["id"]
    flaky = tasks.flaky_external_call.using(attempts=2).enqueue("down", 1.0)

    result = run_worker("--processes", "1")

    assert result.returncode == 0, result.stderr
    assert Order.objects.get(pk=empty_id).status == Order.Status.REJECTED
    letters = {letter.task: letter for letter in DeadLetter.objects.all()}
    assert set(letters) == {tasks.validate_order.name, flaky.job.task}
    rejected = letters[tasks.validate_order.name]
    assert rejected.attempts == 1
    assert "the order has no items" in rejected.reason
    down = letters[flaky.job.task]
    assert down.attempts == 2
    assert len(down.history) == 2
    assert down.reason.startswith("attempts exhausted (2)")
    assert flaky.refresh().status == JobStatus.FAILED
