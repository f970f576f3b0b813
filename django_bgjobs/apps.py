"""App config: import every app's ``tasks`` and ``jobs`` modules so that their
``@background`` functions are registered before any job runs."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class BgJobsConfig(AppConfig):
    name = "django_bgjobs"
    label = "django_bgjobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)

        autodiscover_modules("tasks", "jobs")
