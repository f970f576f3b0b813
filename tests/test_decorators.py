"""``@background`` and ``JobSpec``: declaration, inline calls, per-enqueue
options, and options refused before anything is written."""

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from django_bgjobs import InvalidJob, JobSpec, JobStatus, background, registry
from django_bgjobs.models import Job
from tests.jobs import add, always_fails


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Keep the functions these tests declare out of the shared registry."""
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))


def test_bare_decorator_makes_a_registered_spec_named_after_the_function():
    @background
    def send_mail(to):
        """Send one mail."""
        return to

    assert isinstance(send_mail, JobSpec)
    assert send_mail.name == (
        "tests.test_decorators."
        "test_bare_decorator_makes_a_registered_spec_named_after_the_function"
        ".<locals>.send_mail"
    )
    assert send_mail.__doc__ == "Send one mail."
    assert registry.get(send_mail.name) is send_mail
    assert send_mail.options.queue is None


def test_decorator_with_empty_parentheses_works_like_the_bare_one():
    @background()
    def task():
        return "ran"

    assert registry.get(task.name) is task
    assert task() == "ran"


def test_decorator_with_options_keeps_them():
    @background(name="mail.send", queue="mail", priority=10, attempts=7, timeout=30)
    def send_mail(to):
        return to

    assert send_mail.name == "mail.send"
    assert registry.get("mail.send") is send_mail
    options = send_mail.options
    assert (options.queue, options.priority, options.attempts, options.timeout) == (
        "mail",
        10,
        7,
        30,
    )


@pytest.mark.django_db
def test_calling_the_spec_runs_the_function_inline_and_enqueues_nothing():
    assert add(2, 3) == 5
    assert not Job.objects.exists()


def test_using_returns_a_copy_and_leaves_the_original_alone():
    original = add.options

    urgent = add.using(queue="urgent", priority=50, attempts=9)

    assert urgent is not add
    assert (urgent.name, urgent.func) == (add.name, add.func)
    assert (urgent.options.queue, urgent.options.priority) == ("urgent", 50)
    assert urgent.options.attempts == 9
    assert add.options is original
    assert (add.options.queue, add.options.priority, add.options.attempts) == (
        None,
        None,
        None,
    )


def test_using_keeps_the_decorator_options_it_does_not_change():
    spec = always_fails.using(queue="other")

    assert spec.options.attempts == 3
    assert spec.options.backoff_delay == 0.05
    assert spec.retry_policy().attempts == 3


def test_retry_policy_takes_settings_as_defaults():
    @background
    def plain():
        return None

    with override_settings(
        BGJOBS={"DEFAULT_ATTEMPTS": 6, "DEFAULT_BACKOFF": "fixed", "BACKOFF_DELAY": 4}
    ):
        policy = plain.retry_policy()

    assert (policy.attempts, policy.backoff(3), policy.jitter) == (6, 4, True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": "bad queue"}, r"Invalid queue name 'bad queue'"),
        ({"queue": ""}, r"Invalid queue name ''"),
        ({"priority": 101}, r"priority must be an integer from -100 to 100, got 101"),
        ({"priority": -101}, r"from -100 to 100, got -101"),
        ({"priority": True}, r"from -100 to 100, got True"),
        ({"attempts": 0}, r"attempts must be an integer >= 1, got 0"),
        ({"timeout": 0}, r"timeout must be a number > 0, got 0"),
        ({"backoff": "linear"}, r"backoff must be 'fixed', 'exponential'"),
        ({"key": "k" * 256}, r"key must be 1-255 characters, got 256"),
        ({"attempts": True}, r"attempts must be an integer >= 1, got True"),
    ],
)
def test_decorator_refuses_bad_options_and_registers_nothing(options, message):
    before = registry.names()

    with pytest.raises(InvalidJob, match=message):

        @background(name="refused", **options)
        def refused():
            return None

    assert registry.names() == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": "bad/queue"}, r"Invalid queue name 'bad/queue'"),
        ({"priority": 101}, r"priority must be an integer from -100 to 100, got 101"),
        ({"priority": -101}, r"from -100 to 100, got -101"),
        ({"priority": False}, r"from -100 to 100, got False"),
        ({"delay": -1}, r"delay must be seconds or a timedelta >= 0, got -1"),
        ({"delay": dt.timedelta(seconds=-5)}, r"delay must be .* >= 0"),
        ({"run_at": dt.datetime(2030, 1, 1)}, r"run_at must be an aware datetime"),
        ({"attempts": -2}, r"attempts must be an integer >= 1, got -2"),
        ({"key": ""}, r"key must be 1-255 characters, got 0"),
        ({"timeout": True}, r"timeout must be a number > 0, got True"),
    ],
)
@pytest.mark.django_db
def test_bad_per_enqueue_options_raise_and_write_nothing(options, message):
    spec = add.using(**options)

    with pytest.raises(InvalidJob, match=message):
        spec.enqueue(1, 2)
    with pytest.raises(InvalidJob, match=message):
        spec.enqueue_many([((1, 2), {})])

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_options_resolve_settings_then_decorator_then_using():
    @background(queue="decorated", priority=5)
    def task():
        return None

    run_at = timezone.now() + dt.timedelta(hours=1)
    with override_settings(BGJOBS={"DEFAULT_QUEUE": "settings", "DEFAULT_PRIORITY": 1}):
        from_decorator = task.enqueue()
        from_using = task.using(queue="using", run_at=run_at).enqueue()
        from_settings = add.enqueue(1, 1)

    rows = Job.objects.in_bulk([from_decorator.id, from_using.id, from_settings.id])
    assert (rows[from_settings.id].queue, rows[from_settings.id].priority) == (
        "settings",
        1,
    )
    assert (rows[from_decorator.id].queue, rows[from_decorator.id].priority) == (
        "decorated",
        5,
    )
    assert (rows[from_using.id].queue, rows[from_using.id].priority) == ("using", 5)
    assert rows[from_using.id].run_at == run_at
    assert rows[from_using.id].status == JobStatus.SCHEDULED
