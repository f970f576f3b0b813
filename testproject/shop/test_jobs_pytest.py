"""The shop's jobs tested in pytest style, with the fixtures of the
``bgjobs`` pytest plugin (installed with django-bgjobs) and pytest-django."""

import json

import pytest

from django_bgjobs import JobStatus

from . import tasks
from .tests import seed_products


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


@pytest.mark.django_db
def test_signup_enqueues_the_welcome_email(client, bgjobs_enqueued):
    response = post_json(client, "/signup", {"username": "ann", "email": "a@b.org"})

    user_id = response.json()["id"]
    bgjobs_enqueued.assert_enqueued(tasks.send_welcome_email, args=[user_id], count=1)


@pytest.mark.django_db
def test_signup_jobs_run_inline(client, mailoutbox, bgjobs_inline):
    post_json(client, "/signup", {"username": "ann", "email": "a@b.org"})

    assert [m.subject for m in mailoutbox] == ["Welcome to the demo shop"]


@pytest.mark.django_db
def test_drained_order_completes(client, mailoutbox, bgjobs_drain):
    seed_products()
    response = post_json(
        client, "/orders", {"email": "a@b.org", "items": [{"sku": "mug", "qty": 1}]}
    )

    result = bgjobs_drain()

    assert result.succeeded == 5
    assert result.failed == 0
    order = tasks.Order.objects.get(pk=response.json()["id"])
    assert order.status == tasks.Order.Status.COMPLETED
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_inline_jobs_wait_for_the_commit_of_a_real_transaction(bgjobs_inline):
    from django.db import transaction

    from .actions import register_user

    with transaction.atomic():
        _, handles = register_user("ann", "a@b.org")
        assert {h.refresh().status for h in handles} == {JobStatus.READY}

    assert {h.refresh().status for h in handles} == {JobStatus.SUCCEEDED}
