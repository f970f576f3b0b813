"""How a project tests its jobs with ``django_bgjobs.testing``: the shop's
signup and order flows, checked with the assertions, run inline or drained.

Django's test runner finds these classes (``manage.py test testproject``);
pytest runs them too. ``test_jobs_pytest.py`` has the same in pytest style.
"""

import importlib
import json

from django.core import mail
from django.test import TestCase, override_settings

from django_bgjobs import JobStatus
from django_bgjobs.models import DeadLetter
from django_bgjobs.testing import (
    assert_enqueued,
    assert_not_enqueued,
    capture_enqueued,
    drain,
    run_inline,
)

from . import tasks
from .models import Order, Product


def seed_products():
    """Seed the catalogue as the data migration does: a TransactionTestCase
    elsewhere may have flushed its rows."""
    seed = importlib.import_module("testproject.shop.migrations.0002_products")
    for sku, name, price, stock in seed.PRODUCTS:
        Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "price": price, "stock": stock}
        )


class SignupTests(TestCase):
    def signup(self, username="ann"):
        data = {"username": username, "email": f"{username}@example.com"}
        response = self.client.post(
            "/signup", json.dumps(data), content_type="application/json"
        )
        self.assertEqual(response.status_code, 201)
        return response.json()["id"]

    def test_signup_enqueues_the_four_jobs_and_runs_none(self):
        with capture_enqueued() as enqueued:
            user_id = self.signup()

        for spec in tasks.SIGNUP_JOBS:
            enqueued.assert_enqueued(spec, args=[user_id], count=1)
        self.assertEqual(len(enqueued()), 4)
        self.assertEqual(mail.outbox, [])

    def test_signup_jobs_run_inline_and_welcome_once(self):
        with run_inline():
            user_id = self.signup()
            self.signup("bob")

        self.assertEqual(
            [m.to for m in mail.outbox], [["ann@example.com"], ["bob@example.com"]]
        )
        welcome = assert_enqueued(tasks.send_welcome_email, args=[user_id])[0]
        self.assertEqual(welcome.status, JobStatus.SUCCEEDED)
        self.assertEqual(welcome.result, {"sent": True, "to": "ann@example.com"})


@override_settings(BGJOBS={"INLINE": True})
class OrderInlineTests(TestCase):
    """With ``BGJOBS["INLINE"]`` every job of these tests runs inline."""

    @classmethod
    def setUpTestData(cls):
        seed_products()

    def order(self, items):
        data = {"email": "buyer@example.com", "items": items}
        response = self.client.post(
            "/orders", json.dumps(data), content_type="application/json"
        )
        self.assertEqual(response.status_code, 201)
        return Order.objects.get(pk=response.json()["id"])

    def test_an_order_runs_through_the_whole_pipeline(self):
        order = self.order([{"sku": "mug", "qty": 2}])

        order.refresh_from_db()
        self.assertEqual(order.status, Order.Status.COMPLETED)
        self.assertEqual(Product.objects.get(sku="mug").stock, 998)
        self.assertEqual(
            [m.subject for m in mail.outbox], [f"Order #{order.pk} confirmed"]
        )
        assert_enqueued(tasks.charge_payment, args=[order.pk], count=1)

    def test_an_empty_order_is_rejected_without_retries(self):
        order = self.order([])

        order.refresh_from_db()
        self.assertEqual(order.status, Order.Status.REJECTED)
        letter = DeadLetter.objects.get(task=tasks.validate_order.name)
        self.assertEqual(letter.attempts, 1)
        assert_not_enqueued(tasks.charge_payment)


class OrderDrainTests(TestCase):
    """Jobs wait as on a real worker until the test drains them."""

    @classmethod
    def setUpTestData(cls):
        seed_products()

    def test_drain_runs_the_pipeline_step_by_step(self):
        from .actions import place_order

        order, _ = place_order("buyer@example.com", [{"sku": "sticker", "qty": 1}])

        self.assertEqual(drain("orders").succeeded, 1)
        order.refresh_from_db()
        self.assertEqual(order.status, Order.Status.VALIDATED)
        result = drain()
        self.assertEqual((result.succeeded, result.failed), (4, 0))
        order.refresh_from_db()
        self.assertEqual(order.status, Order.Status.COMPLETED)

    @override_settings(SHOP_PAYMENT_FAILURE_RATE=1.0)
    def test_a_payment_outage_is_retried_at_once_then_dead_lettered(self):
        from .actions import place_order

        order, _ = place_order("buyer@example.com", [{"sku": "mug", "qty": 1}])

        result = drain()

        # validate_order succeeded; charge_payment ran its 3 attempts at once.
        self.assertEqual((result.succeeded, result.failed, result.attempts), (1, 1, 4))
        letter = DeadLetter.objects.get(task=tasks.charge_payment.name)
        self.assertIn("payment gateway did not answer", letter.reason)
        order.refresh_from_db()
        self.assertEqual(order.status, Order.Status.VALIDATED)
