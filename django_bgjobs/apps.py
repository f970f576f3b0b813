"""App config: import every app's ``tasks`` and ``jobs`` modules so that their
``@background`` functions are registered before any job runs."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


def run_inline(jobs: list[tuple[str, str, int]], using: str, reraise: bool) -> None:
    """Run just-enqueued jobs in this process (inline mode is on)."""
    # Imported here: a web process that never runs a job inline never
    # imports the worker.
    from .worker.local import run_enqueued

    run_enqueued(jobs, using, reraise)


class BgJobsConfig(AppConfig):
    name = "django_bgjobs"
    label = "django_bgjobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        # checks registers the system checks; backend imports django.tasks
        # (Django 6), whose import registers Django's check of TASKS.
        from . import backend, checks  # noqa: F401
        from .broker.sqlite import use_real_variable_limit

        connection_created.connect(
            use_real_variable_limit, dispatch_uid="bgjobs-sqlite-variable-limit"
        )

        from .enqueue import install_inline_runner

        install_inline_runner(run_inline)
        autodiscover_modules("tasks", "jobs")
