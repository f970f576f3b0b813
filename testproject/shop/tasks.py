"""The demo's background jobs: the four signup jobs, the order pipeline, and
a flaky call that shows retries and dead letters.

Jobs take ids, not rows, and read the state again when they run. Each step of
the order pipeline moves the order on and enqueues the next step in one
transaction, and does nothing if the order has already moved on: a step that
a worker runs again after a crash changes nothing twice.
"""

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from django_bgjobs import Permanent, background

from . import outside
from .models import Order, Product, Profile

Status = Order.Status


def _profile(user_id):
    try:
        return Profile.objects.select_related("user").get(user_id=user_id)
    except Profile.DoesNotExist:
        raise Permanent(f"user {user_id} has no profile (deleted?)") from None


@background(queue="emails")
def send_welcome_email(user_id):
    """E-mail a welcome to a new user, unless it was already sent."""
    profile = _profile(user_id)
    if profile.welcomed_at is not None:
        return {"sent": False}
    outside.pause(2.0)
    user = profile.user
    send_mail(
        "Welcome to the demo shop",
        f"Hello {user.username},\n\nthanks for signing up!\n",
        None,
        [user.email],
    )
    # At-least-once: a crash between send_mail and this update sends twice.
    Profile.objects.filter(pk=profile.pk).update(welcomed_at=timezone.now())
    return {"sent": True, "to": user.email}


@background(queue="media")
def generate_thumbnail(user_id):
    """Draw the user's avatar thumbnail."""
    profile = _profile(user_id)
    name = profile.user.get_full_name() or profile.user.username
    svg = outside.draw_thumbnail(name, seed=profile.avatar_url or name)
    Profile.objects.filter(pk=profile.pk).update(thumbnail=svg)
    return {"bytes": len(svg)}


@background(queue="crm")
def notify_crm(user_id):
    """Create or update the user's contact in the CRM."""
    return {"contact": outside.upsert_crm_contact(_profile(user_id).user)}


@background(queue="analytics")
def update_analytics(user_id):
    """Send the signup event to analytics."""
    return {"event": outside.track_signup(_profile(user_id).user)}


SIGNUP_JOBS = (send_welcome_email, generate_thumbnail, notify_crm, update_analytics)


def _order(order_id, *, lock=False):
    orders = Order.objects.select_for_update() if lock else Order.objects
    try:
        return orders.get(pk=order_id)
    except Order.DoesNotExist:
        raise Permanent(f"order {order_id} does not exist") from None


def _advance(order_id, before, after, then=(), **changes):
    """Move the order from ``before`` to ``after`` and enqueue ``then`` in one
    transaction; return False, changing nothing, if it is not at ``before``."""
    with transaction.atomic():
        order = _order(order_id, lock=True)
        if order.status != before:
            return False
        order.status = after
        for name, value in changes.items():
            setattr(order, name, value)
        order.save()
        for spec in then:
            spec.enqueue(order_id)
    return True


def _give_up(order_id, before, after, problem):
    """Park the order at ``after`` and send this job to dead letters."""
    Order.objects.filter(pk=order_id, status=before).update(
        status=after, problem=problem
    )
    raise Permanent(f"order {order_id}: {problem}")


@background(queue="orders")
def validate_order(order_id):
    """Check the order; an invalid one is rejected without retries."""
    problem = _order(order_id).find_problem()
    if problem:
        _give_up(order_id, Status.NEW, Status.REJECTED, problem)
    moved = _advance(order_id, Status.NEW, Status.VALIDATED, then=[charge_payment])
    return {"valid": True, "moved": moved}


def payment_key(order_id):
    """Return the idempotency key of an order's payment."""
    return f"payment:{order_id}"


@background(
    queue="payments",
    attempts=3,
    backoff="exponential",
    backoff_delay=1.0,
    key=payment_key,
)
def charge_payment(order_id):
    """Charge the order once, however often this runs: the job is enqueued
    under the key ``payment:<id>`` and the gateway gets the same key."""
    order = _order(order_id)
    if order.status != Status.VALIDATED:
        return {"payment_id": order.payment_id, "moved": False}
    payment_id = outside.charge(order, key=payment_key(order_id))
    moved = _advance(
        order_id,
        Status.VALIDATED,
        Status.PAID,
        then=[reserve_inventory],
        payment_id=payment_id,
    )
    return {"payment_id": payment_id, "moved": moved}


@background(queue="inventory")
def reserve_inventory(order_id):
    """Take the items out of stock, then start the two notification jobs."""
    with transaction.atomic():
        order = _order(order_id, lock=True)
        if order.status != Status.PAID:
            return {"reserved": False}
        wanted = order.quantities()
        stock = dict(
            Product.objects.select_for_update()
            .filter(sku__in=wanted)
            .values_list("sku", "stock")
        )
        short = [
            f"{sku} (wanted {qty}, {stock.get(sku, 0)} left)"
            for sku, qty in sorted(wanted.items())
            if stock.get(sku, 0) < qty
        ]
        if not short:
            for sku, qty in wanted.items():
                Product.objects.filter(sku=sku).update(stock=F("stock") - qty)
            order.status = Status.RESERVED
            order.save(update_fields=["status"])
            send_confirmation_email.enqueue(order_id)
            notify_warehouse.enqueue(order_id, channel="webhook")
    if short:
        # A real shop would also enqueue a refund here.
        _give_up(
            order_id, Status.PAID, Status.ON_HOLD, "out of stock: " + "; ".join(short)
        )
    return {"reserved": wanted}


def _complete(order_id, field):
    """Stamp ``field``; whichever of the last two steps ends second completes
    the order."""
    with transaction.atomic():
        order = _order(order_id, lock=True)
        if getattr(order, field) is None:
            setattr(order, field, timezone.now())
        done = order.confirmation_sent_at and order.warehouse_notified_at
        if done and order.status == Status.RESERVED:
            order.status = Status.COMPLETED
        order.save()


@background(queue="notifications")
def send_confirmation_email(order_id):
    """E-mail the order confirmation, unless it was already sent."""
    order = _order(order_id)
    if order.confirmation_sent_at is not None:
        return {"sent": False}
    outside.pause(1.0)
    send_mail(
        f"Order #{order.pk} confirmed",
        f"Thank you! Total: {order.total}. Payment: {order.payment_id}.\n",
        None,
        [order.email],
    )
    _complete(order_id, "confirmation_sent_at")
    return {"sent": True, "to": order.email}


@background(queue="notifications")
def notify_warehouse(order_id, channel="webhook"):
    """Tell the warehouse to ship the order."""
    reference = outside.notify_warehouse(_order(order_id), channel)
    _complete(order_id, "warehouse_notified_at")
    return {"reference": reference}


@background(attempts=4, backoff="exponential", backoff_delay=0.5)
def flaky_external_call(label, failure_rate=None):
    """Call a service that is down ``failure_rate`` of the time (default
    ``settings.SHOP_FLAKY_FAILURE_RATE``, else 0.5): a failure is retried
    after up to 0.5, 1 and 2 s, and the fourth goes to dead letters."""
    if failure_rate is None:
        failure_rate = outside.setting("SHOP_FLAKY_FAILURE_RATE", 0.5)
    return {"reference": outside.flaky_service(label, failure_rate)}
