"""The django.tasks backend in one process: enqueue, results, options and the
run wrapper's signals and context. tests/worker/test_django_tasks.py runs the
same tasks on real workers."""

import datetime as dt
import inspect
import sys

import django
import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from django_bgjobs import Permanent, registry
from django_bgjobs.backend import HAS_DJANGO_TASKS
from django_bgjobs.broker import get_broker
from django_bgjobs.context import JobContext, running
from django_bgjobs.models import Attempt, Job
from django_bgjobs.status import AttemptOutcome, JobStatus
from django_bgjobs.testing import drain, run_inline

pytestmark = pytest.mark.skipif(
    not HAS_DJANGO_TASKS, reason="django.tasks needs Django 6.0 or later"
)

if HAS_DJANGO_TASKS:
    from django.tasks import TaskResultStatus, default_task_backend, task_backends
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started

    from django_bgjobs.backend.results import exception_class_path
    from tests import jobs, tasks

BACKEND = "django_bgjobs.backend.BgJobsBackend"


@pytest.fixture
def signals():
    """Collect ``(signal name, status, sys.exc_info()[0])`` of every
    django.tasks signal sent."""
    sent = []

    def receiver(name):
        def receive(sender, task_result, **kwargs):
            sent.append((name, task_result.status, sys.exc_info()[0]))

        return receive

    receivers = {
        task_enqueued: receiver("enqueued"),
        task_started: receiver("started"),
        task_finished: receiver("finished"),
    }
    for signal, receive in receivers.items():
        signal.connect(receive)
    yield sent
    for signal, receive in receivers.items():
        signal.disconnect(receive)


def claim_and_run(result):
    """Claim ``result``'s job as a worker would; run its registered function
    as the executor does; return (value or error, the claimed job)."""
    [job] = get_broker().claim(None, 1, "worker-a", timezone.now(), 30.0)
    assert str(job.id) == result.id
    spec = registry.get(job.task)
    func = spec.func
    if inspect.iscoroutinefunction(func):
        # From this thread: the wrapper's thread-sensitive row read runs
        # here, in the test's transaction.
        func = async_to_sync(func)
    with running(JobContext(job.id, job.task, job.queue, job.attempt)):
        try:
            return func(*job.args, **job.kwargs), job
        except Exception as error:
            return error, job


# -- the backend --------------------------------------------------------------


def test_backend_supports_every_feature_of_django_tasks():
    backend = task_backends["default"]
    assert type(backend).__module__ == "django_bgjobs.backend.core"
    assert backend.supports_defer
    assert backend.supports_async_task
    assert backend.supports_get_result
    assert backend.supports_priority


def test_task_modules_register_their_tasks_by_dotted_path():
    spec = registry.get("tests.tasks.add")
    assert spec.task_func is tasks.add.func
    assert spec.declared_by == "django.tasks (TASKS['default'])"
    assert registry.get("tests.jobs.add").declared_by == "@background"


@pytest.mark.django_db
def test_enqueue_inserts_one_job_and_returns_a_ready_result():
    result = tasks.add.enqueue(2, b=3)

    job = Job.objects.get()
    assert result.id == str(job.pk)
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs) == ([2], {"b": 3})
    assert result.enqueued_at == job.created_at
    assert (result.started_at, result.finished_at) == (None, None)
    assert (result.errors, result.worker_ids, result.backend) == ([], [], "default")
    assert result.task == tasks.add
    assert (job.task, job.queue, job.priority, job.status) == (
        "tests.tasks.add",
        "default",
        0,
        JobStatus.READY,
    )
    # OPTIONS of TASKS["default"] (tests/settings.py).
    assert job.max_attempts == 3
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018


@pytest.mark.django_db
def test_using_sets_queue_priority_and_run_after():
    later = timezone.now() + dt.timedelta(hours=1)

    result = tasks.greet.using(priority=-5, run_after=later).enqueue("Ann")

    job = Job.objects.get(pk=result.id)
    assert (job.queue, job.priority, job.status) == ("tasks-other", -5, "scheduled")
    assert job.run_at == later
    fetched = tasks.greet.get_result(result.id)
    assert fetched.status == TaskResultStatus.READY
    assert (fetched.task.priority, fetched.task.queue_name) == (-5, "tasks-other")
    assert fetched.task.run_after == later


@pytest.mark.django_db
def test_a_queue_outside_the_backends_queues_is_refused_as_django_does():
    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid"):
        tasks.add.using(queue_name="elsewhere")


@pytest.mark.django_db
def test_arguments_that_are_not_json_are_refused_naming_the_argument():
    with pytest.raises(TypeError, match="set"):
        tasks.add.enqueue({1}, 2)
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue_joins_the_transaction_and_signals_after_commit(signals):
    def enqueue_then_fail():
        with transaction.atomic():
            tasks.add.enqueue(1, 1)
            assert signals == []
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        enqueue_then_fail()
    assert not Job.objects.exists()
    assert signals == []

    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert signals == []
    assert signals == [("enqueued", TaskResultStatus.READY, None)]
    assert Job.objects.get().pk == int(result.id)


@pytest.mark.django_db
def test_aenqueue_and_aget_result():
    async def enqueue_and_get():
        result = await tasks.add.aenqueue(4, 5)
        return result, await tasks.add.aget_result(result.id)

    # thread_sensitive: the calls run in this thread, in the test transaction.
    result, fetched = async_to_sync(enqueue_and_get)()

    assert (fetched.id, fetched.status, fetched.args) == (result.id, "READY", [4, 5])


# -- get_result ---------------------------------------------------------------


@pytest.mark.django_db
def test_get_result_of_an_unknown_id_raises_does_not_exist():
    for result_id in ("987654321", "abc", "", "-1", "1" * 30):
        with pytest.raises(TaskResultDoesNotExist, match=result_id or "^$"):
            default_task_backend.get_result(result_id)


@pytest.mark.django_db
def test_get_result_of_a_background_job_raises_does_not_exist():
    handle = jobs.add.enqueue(1, 2)
    with pytest.raises(TaskResultDoesNotExist, match=r"tests\.jobs\.add"):
        default_task_backend.get_result(str(handle.id))


@pytest.mark.django_db
def test_get_result_checks_the_task_as_django_does():
    from django.tasks.exceptions import TaskResultMismatch

    result = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch, match=r"tests\.tasks\.add"):
        tasks.fails.get_result(result.id)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (JobStatus.SCHEDULED, "READY"),
        (JobStatus.READY, "READY"),
        (JobStatus.WAITING_CHILDREN, "READY"),
        (JobStatus.RUNNING, "RUNNING"),
        (JobStatus.SUCCEEDED, "SUCCESSFUL"),
        (JobStatus.FAILED, "FAILED"),
        (JobStatus.CANCELLED, "FAILED"),
    ],
)
@pytest.mark.django_db
def test_statuses_map_to_task_result_statuses(status, expected):
    result = tasks.add.enqueue(1, 2)
    now = timezone.now()
    Job.objects.filter(pk=result.id).update(
        status=status, result=3, started_at=now, finished_at=now, worker="w"
    )

    result.refresh()

    assert result.status == TaskResultStatus[expected]
    assert result.is_finished == (expected in ("SUCCESSFUL", "FAILED"))
    assert result.worker_ids == (["w"] if status == JobStatus.RUNNING else [])
    if expected == "SUCCESSFUL":
        assert result.return_value == 3
        assert result.finished_at == now


@pytest.mark.django_db
def test_errors_and_worker_ids_come_from_the_attempt_history():
    result = tasks.add.enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    t0 = timezone.now()
    history = [
        ("w1", AttemptOutcome.FAILED, "ValueError", "Traceback ...\nValueError: x\n"),
        ("w2", AttemptOutcome.TIMED_OUT, "JobTimeout", ""),
        ("w3", AttemptOutcome.LOST, "WorkerLost", ""),
        ("w4", AttemptOutcome.INTERRUPTED, "WorkerShutdown", ""),
        ("w5", AttemptOutcome.FAILED, "tests.jobs.Boom", "Traceback ...\n"),
    ]
    Attempt.objects.bulk_create(
        Attempt(
            job=job,
            number=n,
            worker=worker,
            started_at=t0 + dt.timedelta(seconds=n),
            finished_at=t0 + dt.timedelta(seconds=n),
            outcome=outcome,
            error_class=error_class,
            error_message="x",
            traceback=text,
        )
        for n, (worker, outcome, error_class, text) in enumerate(history, 1)
    )
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, attempt=5, started_at=t0 + dt.timedelta(seconds=5)
    )

    result.refresh()

    assert result.worker_ids == ["w1", "w2", "w3", "w4", "w5"]
    assert result.attempts == 5
    assert [e.exception_class_path for e in result.errors] == [
        "builtins.ValueError",
        "django_bgjobs.worker.executor.JobTimeout",
        "tests.jobs.Boom",
    ]
    assert result.errors[0].exception_class is ValueError
    assert result.errors[0].traceback.endswith("ValueError: x\n")
    assert result.errors[1].traceback == "JobTimeout: x\n"
    assert result.started_at == t0 + dt.timedelta(seconds=1)
    assert result.last_attempted_at == t0 + dt.timedelta(seconds=5)


def test_exception_class_paths_of_stored_error_classes():
    assert exception_class_path("KeyError") == "builtins.KeyError"
    assert exception_class_path("pkg.mod.Error") == "pkg.mod.Error"
    assert (
        exception_class_path("JobCancelled") == "django_bgjobs.exceptions.JobCancelled"
    )
    assert exception_class_path("WorkerLost") == "WorkerLost"


# -- a run --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_sends_started_then_finished_and_returns_the_value(signals):
    result = tasks.add.enqueue(2, 3)
    signals.clear()

    value, _ = claim_and_run(result)

    assert value == 5
    assert signals == [
        ("started", TaskResultStatus.RUNNING, None),
        ("finished", TaskResultStatus.SUCCESSFUL, None),
    ]


@pytest.mark.django_db
def test_an_async_task_is_registered_as_a_coroutine_and_signals_alike(signals):
    result = tasks.async_add.enqueue(20, 22)
    signals.clear()

    assert inspect.iscoroutinefunction(registry.get("tests.tasks.async_add").func)
    value, _ = claim_and_run(result)

    assert value == 42
    assert signals == [
        ("started", TaskResultStatus.RUNNING, None),
        ("finished", TaskResultStatus.SUCCESSFUL, None),
    ]


@pytest.mark.django_db
def test_a_context_task_sees_its_result_and_attempt_number():
    result = tasks.flaky.enqueue(succeed_on=1)

    value, _ = claim_and_run(result)

    assert value == {
        "attempt": 1,
        "id": result.id,
        "status": "RUNNING",
        "errors": 0,
        "workers": 1,
    }


@pytest.mark.django_db
def test_a_failure_that_will_be_retried_sends_no_finished(signals):
    result = tasks.fails.enqueue("boom")
    signals.clear()

    error, job = claim_and_run(result)

    assert isinstance(error, ValueError)
    assert job.charged < job.max_attempts
    assert signals == [("started", TaskResultStatus.RUNNING, None)]


@pytest.mark.django_db
def test_the_last_failure_sends_finished_from_the_except_block(signals, caplog):
    result = tasks.fails.enqueue("boom")
    Job.objects.filter(pk=result.id).update(attempt=2)  # the third and last
    signals.clear()

    error, _ = claim_and_run(result)

    assert isinstance(error, ValueError)
    # Sent while the exception is handled: Django's log record has it.
    assert signals[-1] == ("finished", TaskResultStatus.FAILED, ValueError)
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.name == "django.tasks"
    assert f"Task id={result.id} path=tests.tasks.fails state=FAILED" in (
        record.getMessage()
    )
    assert record.exc_info[0] is ValueError


@pytest.mark.django_db
def test_a_return_value_that_is_not_json_fails_permanently(signals):
    result = tasks.returns_a_set.enqueue()

    error, _ = claim_and_run(result)

    assert isinstance(error, Permanent)
    assert "the task's return value" in str(error)
    assert signals[-1] == ("finished", TaskResultStatus.FAILED, Permanent)


def test_a_context_task_called_outside_a_worker_says_why():
    spec = registry.get("tests.tasks.flaky")
    with pytest.raises(TypeError, match="takes a TaskContext, which only a worker"):
        spec(succeed_on=1)
    assert registry.get("tests.tasks.add")(1, 2) == 3


# -- with the test helpers of django_bgjobs.testing ---------------------------


@pytest.mark.django_db
def test_drain_runs_django_tasks_in_process_retries_included():
    flaky = tasks.flaky.enqueue(succeed_on=2)
    added = tasks.async_add.enqueue(1, 2)

    ran = drain()

    assert (ran.succeeded, ran.attempts) == (2, 3)
    flaky.refresh()
    assert flaky.return_value["attempt"] == 2
    assert [e.exception_class_path for e in flaky.errors] == ["builtins.RuntimeError"]
    added.refresh()
    assert added.return_value == 3


@pytest.mark.django_db(transaction=True)
def test_inline_mode_runs_a_django_task_at_commit_after_task_enqueued(signals):
    with run_inline(), transaction.atomic():
        result = tasks.add.enqueue(2, 2)
        assert signals == []

    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", 4)
    assert [name for name, _, _ in signals] == ["enqueued", "started", "finished"]


# -- OPTIONS and QUEUES -------------------------------------------------------


def tasks_setting(**params):
    return {"default": {"BACKEND": BACKEND, **params}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"OPTIONS": {"attempts": 0}}, r"\['OPTIONS'\]: attempts must be an integer"),
        ({"OPTIONS": {"retries": 2}}, r"unknown key\(s\) 'retries'; known: attempts"),
        ({"OPTIONS": {"queue": "x"}}, r"unknown key\(s\) 'queue'"),
        ({"OPTIONS": ["attempts"]}, r"\['OPTIONS'\] must be a dict, got list"),
        ({"OPTIONS": {"backoff": "linear"}}, "backoff must be 'fixed', 'exponential'"),
        ({"OPTIONS": {"retry_on": "no.such.Error"}}, "cannot import 'no.such.Error'"),
        ({"OPTIONS": {"retry_on": [int]}}, "is not an exception class"),
    ],
)
def test_bad_options_are_check_e020_and_refuse_enqueue(settings, params, message):
    settings.TASKS = tasks_setting(**params)
    backend = task_backends["default"]

    [error] = backend.check()

    assert error.id == "bgjobs.E020"
    assert error.msg.startswith("TASKS['default']['OPTIONS']")
    with pytest.raises(ImproperlyConfigured, match=message):
        backend.enqueue(tasks.add, [1, 2], {})


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ("default", "must be a list of queue names, got 'default'"),
        (["default", "has space"], "holds 'has space', which is not a queue name"),
    ],
)
def test_bad_queue_names_are_check_e022(settings, queues, message):
    settings.TASKS = tasks_setting(QUEUES=queues)

    [error] = task_backends["default"].check()

    assert error.id == "bgjobs.E022"
    assert message in error.msg


def test_good_settings_pass_the_checks(settings):
    from django.tasks.checks import check_tasks

    from django_bgjobs.checks import check_tasks_backend

    settings.TASKS = tasks_setting(
        QUEUES=["default", "a:b"],
        OPTIONS={"retry_on": ["builtins.KeyError", OSError], "timeout": 5},
    )
    backend = task_backends["default"]
    assert backend.check() == []
    assert backend.job_options.retry_on == (KeyError, OSError)
    # Django's check of TASKS runs the backend's; E021 (Django 5.2) is quiet.
    assert [*check_tasks(), *check_tasks_backend()] == []


@pytest.mark.django_db
def test_options_apply_to_every_task_of_the_backend(settings):
    settings.TASKS = tasks_setting(
        OPTIONS={
            "attempts": 7,
            "timeout": 12.5,
            "key": lambda a, b: f"add-{a}-{b}",
            "remove_on_complete": 10,
        }
    )
    # The registered spec follows the new OPTIONS when a task is validated.
    first = tasks.add.using(priority=1).enqueue(1, 2)
    again = tasks.add.using(priority=1).enqueue(1, 2)

    job = Job.objects.get()
    assert (job.max_attempts, job.timeout, job.key) == (7, 12.5, "add-1-2")
    assert again.id == first.id
    assert registry.get("tests.tasks.add").options.remove_on_complete == 10


@pytest.mark.skipif(django.VERSION < (6, 0), reason="needs Django 6")
def test_a_second_alias_registers_its_own_name(settings):
    settings.TASKS = {
        "default": {"BACKEND": BACKEND},
        "critical": {"BACKEND": BACKEND, "OPTIONS": {"attempts": 9}},
    }
    task = tasks.add.using(backend="critical")

    spec = registry.get("tests.tasks.add@critical")
    assert spec.options.attempts == 9
    assert spec.alias == "critical"
    assert task.backend == "critical"
