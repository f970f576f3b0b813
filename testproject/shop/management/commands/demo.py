"""``manage.py demo``: enqueue a batch of demo jobs (signups, orders, flaky
calls, a few of them bound for dead letters) and say where to look."""

import random
import time
import uuid
from collections import Counter

from django.core.management.base import BaseCommand
from django.utils import timezone

from django_bgjobs.models import DeadLetter, Job
from testproject.shop.actions import place_order, register_user
from testproject.shop.tasks import flaky_external_call

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
EVERYDAY = ["mug", "t-shirt", "sticker"]


class Command(BaseCommand):
    help = (
        "Enqueue demo jobs: signups, orders and flaky calls, a few of which end "
        "in dead letters. Start `manage.py runworkers` to run them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--signups", type=int, default=3)
        parser.add_argument("--orders", type=int, default=3)
        parser.add_argument("--flaky", type=int, default=6)
        parser.add_argument(
            "--failure-rate", type=float, default=0.5,
            help="Share of the flaky calls that fail (0.0-1.0, default 0.5).",
        )  # fmt: skip
        parser.add_argument(
            "--wait", type=float, default=0, metavar="SECONDS",
            help="Wait up to SECONDS for the jobs to finish, then sum them up.",
        )  # fmt: skip
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000",
            help="Where the web server answers, for the hints printed at the end "
            "('' prints none).",
        )  # fmt: skip

    def handle(self, **options):
        started = timezone.now()
        run = uuid.uuid4().hex[:4]
        self.signups(run, options["signups"])
        self.orders(run, options["orders"])
        self.flaky(run, options["flaky"], options["failure_rate"])
        if options["wait"] > 0:
            self.wait(started, options["wait"])
            self.report(started)
        if options["url"]:
            self.hints(options["url"].rstrip("/"))

    def say(self, message, style=None):
        self.stdout.write(style(message) if style else message)

    def signups(self, run, count):
        for number in range(count):
            rounds, index = divmod(number, len(NAMES))
            username = f"{NAMES[index]}{rounds or ''}-{run}"
            user, handles = register_user(
                username,
                f"{username}@example.com",
                avatar_url=f"https://avatars.example.com/{username}.png",
            )
            ids = ", ".join(f"#{handle.id}" for handle in handles)
            self.say(f"signup  {username}: user #{user.pk}, jobs {ids}")

    def orders(self, run, count):
        for number in range(1, count + 1):
            skus = random.sample(EVERYDAY, k=random.randint(1, 2))
            items = [{"sku": sku, "qty": random.randint(1, 3)} for sku in skus]
            self.order(f"buyer{number}-{run}@example.com", items, "")
        self.order(f"empty-{run}@example.com", [], "  (no items: rejected)")
        self.order(
            f"collector-{run}@example.com",
            [{"sku": "poster", "qty": 1000}],
            "  (more than the stock: on hold)",
        )

    def order(self, email, items, note):
        order, handle = place_order(email, items)
        self.say(f"order   #{order.pk} {order.total:>8.2f} job #{handle.id}{note}")

    def flaky(self, run, count, rate):
        calls = [((f"{run}-{n}",), {"failure_rate": rate}) for n in range(count)]
        calls.append(((f"{run}-down",), {"failure_rate": 1.0}))
        handles = flaky_external_call.enqueue_many(calls)
        self.say(
            f"flaky   {count} calls failing {rate:.0%} of the time and 1 that "
            f"always fails: jobs #{handles[0].id}-#{handles[-1].id}"
        )

    def wait(self, started, seconds):
        jobs = Job.objects.filter(created_at__gte=started)
        deadline = time.monotonic() + seconds
        self.say(f"\nWaiting up to {seconds:g} s for the workers...")
        while (left := jobs.unfinished().count()) and time.monotonic() < deadline:
            time.sleep(0.5)
        if left:
            self.stderr.write(
                f"{left} jobs are still unfinished: are workers running? "
                "(python manage.py runworkers)"
            )

    def report(self, started):
        rows = Job.objects.filter(created_at__gte=started).values_list("task", "status")
        counts = Counter((task.rsplit(".", 1)[-1], status) for task, status in rows)
        self.say("\nJobs of this run:", self.style.MIGRATE_HEADING)
        for (task, status), n in sorted(counts.items()):
            self.say(f"  {task:<24} {status:<10} {n}")
        letters = DeadLetter.objects.filter(created_at__gte=started).order_by("id")
        self.say(
            f"\nDead letters of this run: {len(letters)}", self.style.MIGRATE_HEADING
        )
        for letter in letters:
            name = letter.task.rsplit(".", 1)[-1]
            self.say(f"  job #{letter.job_id} {name}: {letter.reason}")

    def hints(self, url):
        self.say("\nWhere to look:", self.style.MIGRATE_HEADING)
        self.say(f"  {url}/          jobs, orders and signups at a glance")
        self.say(f"  {url}/admin/    the admin (user admin, password admin)")
        self.say(f"  {url}/signup    sign up with a form")
        self.say(
            "  curl -X POST -H 'Content-Type: application/json' "
            f"""-d '{{"username": "ann", "email": "ann@example.com"}}' {url}/signup"""
        )
