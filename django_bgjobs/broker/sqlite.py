"""SQLite: the claim is one ``UPDATE ... RETURNING`` under ``BEGIN IMMEDIATE``.

SQLite has one writer at a time, so the write lock taken up front makes the
claim exclusive; WAL mode (set by the project's ``init_command``) lets readers
go on meanwhile. Needs SQLite 3.35 for RETURNING.
"""

from __future__ import annotations

from typing import Any

from .base import Broker


class SQLiteBroker(Broker):
    def execute_claim(self, cursor: Any, sql: str, params: list[Any]) -> list[Any]:
        if not self.connection.get_autocommit():
            # Inside the caller's transaction: that transaction holds the lock.
            return super().execute_claim(cursor, sql, params)
        cursor.execute("BEGIN IMMEDIATE")
        try:
            rows = super().execute_claim(cursor, sql, params)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return rows
