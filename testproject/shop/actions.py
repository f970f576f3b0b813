"""What the views and the demo command do: write rows and enqueue jobs in one
transaction, so that a job exists only if the rows it works on do."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import Order, Product, Profile
from .tasks import SIGNUP_JOBS, validate_order


def register_user(username, email, password=None, avatar_url=""):
    """Create a user and enqueue the four signup jobs; return (user, handles).

    Raise ``IntegrityError`` if the username is taken: then nothing is written
    and no job is enqueued.
    """
    with transaction.atomic():
        user = get_user_model().objects.create_user(username, email, password)
        Profile.objects.create(user=user, avatar_url=avatar_url)
        handles = [spec.enqueue(user.pk) for spec in SIGNUP_JOBS]
    return user, handles


def place_order(email, items):
    """Create an order and enqueue the first step of its pipeline; return
    (order, handle).

    ``items`` is a list of ``{"sku": str, "qty": int}``. Whether the order
    makes sense is the ``validate_order`` job's business, as in the seed
    lesson: an invalid order is accepted here and rejected in the background.
    """
    skus = [line["sku"] for line in items]
    prices = dict(Product.objects.filter(sku__in=skus).values_list("sku", "price"))
    total = sum(
        (prices.get(line["sku"], Decimal(0)) * line["qty"] for line in items),
        Decimal(0),
    )
    with transaction.atomic():
        order = Order.objects.create(email=email, items=items, total=total)
        handle = validate_order.enqueue(order.pk)
    return order, handle
