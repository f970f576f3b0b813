"""Every status change that locks or fences, and all vendor SQL.

``get_broker()`` returns the implementation for the jobs database's vendor.
"""

from __future__ import annotations

from django.db import connections, router

from .base import Broker, ClaimedJob, Heartbeat, Record


def get_broker(using: str | None = None) -> Broker:
    """Return the broker for database ``using`` (default: where jobs live).

    Raise ``ImproperlyConfigured`` for a vendor without a broker.
    """
    from ..exceptions import BgJobsImproperlyConfigured
    from ..models import Job

    alias = using or router.db_for_write(Job)
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        from .postgresql import PostgreSQLBroker

        return PostgreSQLBroker(alias)
    if vendor == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(alias)
    if vendor == "mysql":
        from .mysql import MySQLBroker

        return MySQLBroker(alias)
    raise BgJobsImproperlyConfigured(
        f"django-bgjobs has no broker for the {vendor!r} database of alias "
        f"{alias!r}; use PostgreSQL, SQLite, MySQL or MariaDB."
    )


__all__ = ["Broker", "ClaimedJob", "Heartbeat", "Record", "get_broker"]
