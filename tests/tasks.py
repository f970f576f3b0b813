"""Django's own ``@task`` functions, run by django-bgjobs workers through
``TASKS["default"]`` (autodiscovered, so worker processes register them).
Django 5.2 has no ``django.tasks``: the module is then empty."""

import django

if django.VERSION >= (6, 0):
    import asyncio

    from django.tasks import task

    from .models import Execution

    @task
    def add(a, b):
        return a + b

    @task(queue_name="tasks-other", priority=10)
    def greet(name, *, greeting="Hello"):
        return f"{greeting}, {name}!"

    @task
    def fails(message):
        raise ValueError(message)

    @task(takes_context=True)
    def flaky(context, succeed_on):
        """Fail until the ``succeed_on``-th attempt; report what it saw."""
        if context.attempt < succeed_on:
            raise RuntimeError(f"attempt {context.attempt} fails")
        result = context.task_result
        return {
            "attempt": context.attempt,
            "id": result.id,
            "status": result.status,
            "errors": len(result.errors),
            "workers": len(result.worker_ids),
        }

    @task
    def record(token):
        """Insert one Execution row: the order of the rows is the run order."""
        Execution.objects.create(token=token)
        return token

    @task
    def returns_a_set():
        return {1, 2}

    @task
    async def async_add(a, b):
        await asyncio.sleep(0)
        return a + b
