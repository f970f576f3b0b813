"""MySQL and MariaDB: the claim index and the key collation PostgreSQL has.

Django builds the partial indexes of 0001 there as plain ones (models.W037),
so claims, heartbeats and ``has_running`` get an index led by ``status``. The
server's default collation (``utf8mb4_general_ci``) would make idempotency
keys case- and trailing-space-insensitive; a binary NO PAD one keeps them
exact. PostgreSQL and SQLite are left as they are.
"""

from typing import Any

from django.db import migrations

INDEX = "bgjobs_job_mysql_claim"


def _key_columns(collation: str | None) -> str:
    # Without a collation the columns take the table's default again.
    charset = f" CHARACTER SET utf8mb4 COLLATE {collation}" if collation else ""
    return ", ".join(
        f"MODIFY `{column}` varchar(255){charset} NULL"
        for column in ("key", "active_key")
    )


def forwards(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    # MariaDB and MySQL name their binary NO PAD collations differently.
    exact = "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"
    schema_editor.execute(f"ALTER TABLE bgjobs_job {_key_columns(exact)}")
    schema_editor.execute(
        f"CREATE INDEX {INDEX} ON bgjobs_job (status, priority DESC, run_at, id)"
    )


def backwards(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    schema_editor.execute(f"DROP INDEX {INDEX} ON bgjobs_job")
    schema_editor.execute(f"ALTER TABLE bgjobs_job {_key_columns(None)}")


class Migration(migrations.Migration):
    dependencies = [("django_bgjobs", "0001_initial")]

    # MySQL cannot roll DDL back, so the schema editor refuses it in atomic().
    operations = [migrations.RunPython(forwards, backwards, atomic=False)]
