"""Task name -> ``JobSpec``: one function per name, and a clear error for a
name no function holds."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_bgjobs import TaskNotRegistered, background, registry
from tests import jobs


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Keep the functions these tests declare out of the shared registry."""
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))


def test_autodiscovered_jobs_are_registered_by_name():
    assert registry.get("tests.jobs.add") is jobs.add
    assert {"tests.jobs.add", "tests.jobs.noop"} <= set(registry.names())
    assert registry.names() == sorted(registry.names())


def test_name_taken_by_another_function_is_refused():
    @background(name="registry.taken")
    def first():
        return 1

    with pytest.raises(
        ImproperlyConfigured,
        match=r"Task name 'registry\.taken' is taken by .*<locals>\.first; "
        r"give .*<locals>\.second another name with @background\(name=\.\.\.\)",
    ):

        @background(name="registry.taken")
        def second():
            return 2

    assert registry.get("registry.taken") is first


def test_same_function_registered_again_replaces_its_spec():
    def task():
        return None

    old = background(name="registry.reloaded")(task)
    new = background(name="registry.reloaded", queue="other")(task)

    assert registry.get("registry.reloaded") is new is not old


def test_unknown_name_raises_task_not_registered_naming_it():
    with pytest.raises(
        TaskNotRegistered,
        match=r"^Task 'shop\.tasks\.gone' is not registered: no @background "
        r"function has that name .*tasks\.py and jobs\.py",
    ):
        registry.get("shop.tasks.gone")


def test_task_not_registered_is_a_lookup_error():
    with pytest.raises(LookupError, match="is not registered"):
        registry.get("")
