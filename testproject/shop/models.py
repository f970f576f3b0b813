"""Rows of the demo shop: profiles, products, orders, and the calls made to
the (fake) outside world.

An ``ExternalCall`` with a ``key`` is made at most once: the unique key is
how the jobs stay idempotent when a worker runs them again.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class Profile(models.Model):
    """What a signup adds to a user; filled in by the signup jobs."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    avatar_url = models.URLField(blank=True, default="")
    thumbnail = models.TextField(
        blank=True, default="", help_text="SVG drawn by generate_thumbnail"
    )
    welcomed_at = models.DateTimeField(
        null=True, blank=True, help_text="When send_welcome_email sent the e-mail"
    )

    def __str__(self):
        return f"profile of {self.user}"


class Product(models.Model):
    sku = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.name} ({self.sku})"


class Order(models.Model):
    """An order moved along by the pipeline, one status per finished step."""

    class Status(models.TextChoices):
        NEW = "new"
        VALIDATED = "validated"
        PAID = "paid"
        RESERVED = "reserved"
        COMPLETED = "completed"
        REJECTED = "rejected"
        ON_HOLD = "on_hold", "On hold"

    email = models.EmailField()
    items = models.JSONField(default=list, blank=True, help_text='[{"sku", "qty"}]')
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    status = models.CharField(max_length=20, choices=Status, default=Status.NEW)
    problem = models.TextField(blank=True, default="")
    payment_id = models.CharField(max_length=100, blank=True, default="")
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    warehouse_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"order #{self.pk} ({self.status})"

    def quantities(self):
        """Return {sku: total quantity}, summing lines of the same sku."""
        wanted = {}
        for line in self.items:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["qty"]
        return wanted

    def find_problem(self):
        """Return what makes this order invalid, or "" if it is valid."""
        if not self.items:
            return "the order has no items"
        wanted = self.quantities()
        if any(qty <= 0 for qty in wanted.values()):
            return "every quantity must be at least 1"
        known = set(
            Product.objects.filter(sku__in=wanted).values_list("sku", flat=True)
        )
        unknown = sorted(set(wanted) - known)
        if unknown:
            return f"unknown products: {', '.join(unknown)}"
        if self.total <= 0:
            return "the total must be more than zero"
        return ""


class ExternalCall(models.Model):
    """One call the jobs made to the fake outside world."""

    service = models.CharField(max_length=50)
    action = models.CharField(max_length=50)
    key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    reference = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.service}.{self.action} {self.key or ''}".strip()
