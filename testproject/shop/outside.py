"""The outside world the jobs talk to (payment gateway, CRM, analytics,
warehouse), faked offline.

Each call sleeps a while, scaled by ``settings.SHOP_LATENCY_SCALE`` (0 in the
tests), may fail as often as the settings say, and is recorded as an
``ExternalCall``. Calls with a key are idempotent, as a real gateway's
idempotency keys are: the same key returns the first call's reference.
"""

import hashlib
import html
import logging
import random
import time
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction

from .models import ExternalCall

logger = logging.getLogger(__name__)


class ServiceUnavailable(ConnectionError):
    """A transient failure of an outside service: worth a retry."""


def setting(name, default):
    return getattr(settings, name, default)


def pause(seconds):
    """Sleep as long as the real service would take, scaled by the settings."""
    scaled = seconds * setting("SHOP_LATENCY_SCALE", 0.0)
    if scaled > 0:
        time.sleep(scaled)


def maybe_fail(service, rate):
    if rate > 0 and random.random() < rate:
        raise ServiceUnavailable(f"{service} did not answer (simulated outage)")


def call(service, action, key, payload, reference=""):
    """Record a call; with a key used before, return the first call instead."""
    existing = ExternalCall.objects.filter(key=key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            made = ExternalCall.objects.create(
                service=service,
                action=action,
                key=key,
                payload=payload,
                reference=reference or f"{service[:3]}_{uuid.uuid4().hex[:12]}",
            )
    except IntegrityError:  # another run recorded the same key first
        return ExternalCall.objects.get(key=key)
    logger.info("%s.%s key=%s reference=%s", service, action, key, made.reference)
    return made


def charge(order, key):
    """Charge the order's total; return the payment id.

    Raise ``ServiceUnavailable`` as often as ``SHOP_PAYMENT_FAILURE_RATE``.
    """
    pause(0.8)
    maybe_fail("payment gateway", setting("SHOP_PAYMENT_FAILURE_RATE", 0.0))
    payload = {"order": order.pk, "amount": str(order.total), "email": order.email}
    return call("payments", "charge", key, payload).reference


def upsert_crm_contact(user):
    pause(0.4)
    payload = {"user": user.pk, "email": user.email, "username": user.username}
    return call("crm", "upsert_contact", f"crm:user:{user.pk}", payload).reference


def track_signup(user):
    pause(0.3)
    payload = {"event": "signup", "user": user.pk}
    return call("analytics", "track", f"analytics:signup:{user.pk}", payload).reference


def notify_warehouse(order, channel):
    pause(0.3)
    payload = {"order": order.pk, "items": order.items, "channel": channel}
    return call("warehouse", "notify", f"warehouse:{order.pk}", payload).reference


def flaky_service(label, rate):
    """Call a service that is down ``rate`` of the time (0.0-1.0)."""
    pause(0.2)
    maybe_fail("flaky service", rate)
    return call("flaky", "call", f"flaky:{label}", {"label": label}).reference


def draw_thumbnail(name, seed):
    """Return a 64x64 SVG with the first letter of ``name`` on a colour from
    ``seed``: a real job would download and resize the avatar instead."""
    pause(0.5)
    letter = name.strip()[:1].upper() or "?"
    hue = int(hashlib.sha256(seed.encode()).hexdigest()[:4], 16) % 360
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        f'<rect width="64" height="64" rx="32" fill="hsl({hue},55%,45%)"/>'
        '<text x="32" y="41" font-size="24" text-anchor="middle" fill="#fff" '
        f'font-family="sans-serif">{html.escape(letter)}</text>'
        "</svg>"
    )
