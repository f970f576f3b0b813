"""Views of the demo shop: signup and order endpoints that answer at once and
leave the slow work to background jobs, and a home page that shows the jobs.

The endpoints take a form (which must carry the CSRF token) or a JSON body
(which needs none: a browser sends cross-site JSON only after a CORS
preflight, and this site allows none).
"""

import json
import time

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from django_bgjobs.models import DeadLetter, Job

from .actions import place_order, register_user
from .forms import OrderForm, SignupForm, order_lines
from .models import Order, Product, Profile


def _admin_url(name):
    try:
        return reverse(f"admin:{name}")
    except NoReverseMatch:  # that admin page is not registered (yet)
        return None


@require_GET
def home(request):
    counts = dict(Job.objects.values_list("status").annotate(n=Count("id")).order_by())
    context = {
        "counts": sorted(counts.items()),
        "jobs": Job.objects.order_by("-id")[:15],
        "dead_letters": DeadLetter.objects.all()[:5],
        "dead_count": DeadLetter.objects.count(),
        "profiles": Profile.objects.select_related("user").order_by("-id")[:8],
        "orders": Order.objects.all()[:8],
        "products": Product.objects.order_by("sku"),
        "jobs_admin": _admin_url("django_bgjobs_job_changelist"),
        "dead_admin": _admin_url("django_bgjobs_deadletter_changelist"),
    }
    return render(request, "shop/home.html", context)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def signup(request):
    """GET: the form. POST: create the user, enqueue four jobs, answer."""
    if request.method == "GET":
        return render(request, "shop/signup.html", {"form": SignupForm()})
    return _dispatch(request, _signup)


@csrf_exempt
@require_POST
def orders(request):
    """POST: create an order, start its pipeline, answer."""
    return _dispatch(request, _order)


def _dispatch(request, handler):
    if request.content_type != "application/json":
        return csrf_protect(lambda request: handler(request, request.POST))(request)
    try:
        data = json.loads(request.body)
    except ValueError:
        return _error(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        return _error(400, "the body must be a JSON object")
    return handler(request, data)


def _error(status, message, **extra):
    return JsonResponse({"error": message, **extra}, status=status)


def _elapsed_ms(started):
    return round((time.perf_counter() - started) * 1000, 1)


def _signup(request, data):
    started = time.perf_counter()
    form = SignupForm(data)
    if not form.is_valid():
        return _error(400, "invalid signup", fields=form.errors.get_json_data())
    fields = form.cleaned_data
    # An empty password would be hashed (slow) and usable: make it unusable.
    fields["password"] = fields["password"] or None
    try:
        user, handles = register_user(**fields)
    except IntegrityError:
        return _error(409, f"the username {fields['username']!r} is taken")
    return JsonResponse(
        {
            "id": user.pk,
            "jobs": [handle.id for handle in handles],
            "elapsed_ms": _elapsed_ms(started),
        },
        status=201,
    )


def _order(request, data):
    started = time.perf_counter()
    form = OrderForm(data)
    if not form.is_valid():
        return _error(400, "invalid order", fields=form.errors.get_json_data())
    try:
        items = order_lines(data)
    except ValidationError as error:
        return _error(400, error.messages[0])
    order, handle = place_order(form.cleaned_data["email"], items)
    return JsonResponse(
        {
            "id": order.pk,
            "status": order.status,
            "total": str(order.total),
            "jobs": [handle.id],
            "elapsed_ms": _elapsed_ms(started),
        },
        status=201,
    )
