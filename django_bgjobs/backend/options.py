"""``TASKS[alias]["OPTIONS"]`` and ``["QUEUES"]`` read into ``JobOptions``.

Pure configuration: no ``django.tasks`` import, so that the checks can name a
bad value on every Django version. A bad value raises
``ImproperlyConfigured`` naming the alias, the key and the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.module_loading import import_string

from ..conf import QUEUE_NAME
from ..decorators import JobOptions
from ..exceptions import BgJobsImproperlyConfigured, InvalidJob

#: The ``@background`` options that ``OPTIONS`` may give every task of a
#: backend. Queue, priority and run time come from the ``Task`` itself.
ALLOWED = (
    "attempts",
    "backoff",
    "backoff_delay",
    "backoff_max",
    "jitter",
    "retry_on",
    "dont_retry_on",
    "timeout",
    "result_ttl",
    "key",
    "limit_key",
    "remove_on_complete",
    "remove_on_fail",
    "atomic",
)
_CLASSES = ("retry_on", "dont_retry_on")


def parse_options(alias: str, raw: Any) -> JobOptions:
    """Return the ``JobOptions`` of ``TASKS[alias]["OPTIONS"]``.

    ``retry_on`` and ``dont_retry_on`` take exception classes or their dotted
    paths. Raise ``ImproperlyConfigured`` for an unknown key or a bad value.
    """
    where = f"TASKS[{alias!r}]['OPTIONS']"
    if not isinstance(raw, Mapping):
        raise BgJobsImproperlyConfigured(
            f"{where} must be a dict, got {type(raw).__name__} {raw!r}."
        )
    unknown = sorted(set(raw) - set(ALLOWED), key=str)
    if unknown:
        raise BgJobsImproperlyConfigured(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(ALLOWED)}."
        )
    values = dict(raw)
    for field in _CLASSES:
        if field in values:
            values[field] = _exception_classes(f"{where}[{field!r}]", values[field])
    options = JobOptions(**values)
    try:
        options.validate()
    except InvalidJob as error:
        raise BgJobsImproperlyConfigured(f"{where}: {error}") from None
    return options


def _exception_classes(where: str, value: Any) -> tuple[type[BaseException], ...]:
    items = [value] if isinstance(value, str | type) else value
    if not isinstance(items, Iterable):
        raise BgJobsImproperlyConfigured(
            f"{where} must be exception classes or their dotted paths, got {value!r}."
        )
    classes = []
    for item in items:
        found = item
        if isinstance(item, str):
            try:
                found = import_string(item)
            except ImportError as error:
                raise BgJobsImproperlyConfigured(
                    f"{where}: cannot import {item!r}: {error}"
                ) from None
        if not isinstance(found, type) or not issubclass(found, BaseException):
            raise BgJobsImproperlyConfigured(
                f"{where}: {item!r} is not an exception class."
            )
        classes.append(found)
    return tuple(classes)


def check_queues(alias: str, raw: Any) -> list[str]:
    """Return the problems of ``TASKS[alias]["QUEUES"]``: Django's list of
    the queue names a task may use; each must also be a django-bgjobs queue
    name."""
    where = f"TASKS[{alias!r}]['QUEUES']"
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        return [f"{where} must be a list of queue names, got {raw!r}."]
    return [
        f"{where} holds {name!r}, which is not a queue name: use 1-100 letters, "
        "digits, '_', '-', '.' or ':'."
        for name in raw
        if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name)
    ]
