"""The databases a run measures: reaching them, creating and migrating them, emptying tables."""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connections

from .tasks_router import tasks_database

ALIASES = ("sqlite", "postgres")
"""The database aliases ``--db all`` measures, in that order. ``mariadb`` is measured when asked
for by name: its driver is an extra (``[mysql]``) that builds against a C library."""

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MARIADB_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"


def unavailable(alias: str) -> str | None:
    """Why ``alias`` cannot be measured now, or None when it can."""
    if alias == "mariadb" and alias not in settings.DATABASES:
        return "mysqlclient is not installed: pip install 'django-domain-events[mysql]'"
    params = settings.DATABASES[alias]
    if params["ENGINE"] == "django.db.backends.sqlite3":
        return None
    host, port = params["HOST"], int(params["PORT"])
    if params["ENGINE"] == "django.db.backends.mysql":
        server, start = "MariaDB", MARIADB_START
    else:
        server, start = "PostgreSQL", PG_START
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError:
        return f"{server} not reachable at {host}:{port} — start it with: {start}"


def _create_mariadb_database(params: dict[str, Any]) -> None:
    import MySQLdb

    server = MySQLdb.connect(
        host=params["HOST"],
        port=int(params["PORT"]),
        user=params["USER"],
        password=params.get("PASSWORD") or "",
        connect_timeout=5,
    )
    try:
        name = params["NAME"].replace("`", "``")
        server.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    finally:
        server.close()


def _create_postgres_database(params: dict[str, Any]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=params["HOST"],
        port=params["PORT"],
        user=params["USER"],
        password=params.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    ) as conn:
        name = params["NAME"]
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def prepare(alias: str) -> None:
    """Create the database if it is missing and bring its schema up to date."""
    if connections[alias].vendor == "postgresql":
        _create_postgres_database(settings.DATABASES[alias])
    elif connections[alias].vendor == "mysql":
        _create_mariadb_database(settings.DATABASES[alias])
    # django-tasks-db's data migrations write through the router, which names no alias itself.
    with tasks_database(alias):
        call_command("migrate", database=alias, verbosity=0, interactive=False)


def _tables() -> list[str]:
    """Every table of the outbox app and the benchmark app, each before the tables it
    references: SQLite checks a foreign key statement by statement here."""
    from django.apps import apps

    remaining = [
        *apps.get_app_config("django_domain_events").get_models(),
        *apps.get_app_config("benchapp").get_models(),
    ]
    ordered = []
    while remaining:
        referenced = {
            field.related_model
            for model in remaining
            for field in model._meta.concrete_fields
            if field.is_relation and field.related_model is not model
        }
        ready = [model for model in remaining if model not in referenced] or remaining  # a cycle
        ordered += ready
        remaining = [model for model in remaining if model not in ready]
    return [model._meta.db_table for model in ordered]


def reset(alias: str, *, checkpoint: bool = True) -> None:
    """Empty every table a case writes, so each run starts from the same state.

    With ``checkpoint``, also writes out what the previous run left dirty (PostgreSQL
    ``CHECKPOINT``, the SQLite WAL), so that work is not charged to the next timed run. On a
    busy shared server a CHECKPOINT takes seconds: a smoke run, which times nothing, skips it.
    """
    connection = connections[alias]
    quote = connection.ops.quote_name
    tables = _tables()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(quote(name) for name in tables)}")
            if checkpoint:
                cursor.execute("CHECKPOINT")
        elif connection.vendor == "mysql":
            # TRUNCATE is DDL there, and refused on a table another one references.
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            try:
                for name in tables:
                    cursor.execute(f"TRUNCATE TABLE {quote(name)}")
            finally:
                cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        else:
            for name in tables:
                cursor.execute(f"DELETE FROM {quote(name)}")
            if checkpoint:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def describe(alias: str) -> dict[str, Any]:
    """The server and the settings that decide its speed, for the results file."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
            found = {}
            for name in names:
                cursor.execute(f"SHOW {name}")
                found[name] = cursor.fetchone()[0]
            return {"vendor": "postgresql", "transport": "TCP 127.0.0.1", **found}
        if connection.vendor == "mysql":
            # The session's isolation is Django's (READ COMMITTED), named tx_isolation before
            # MariaDB 11.1 and MySQL 8.
            cursor.execute(
                "SELECT @@SESSION.tx_isolation"
                if connection.mysql_is_mariadb and connection.mysql_version < (11, 1)
                else "SELECT @@SESSION.transaction_isolation"
            )
            isolation = str(cursor.fetchone()[0])
            names = ("innodb_flush_log_at_trx_commit", "sync_binlog", "innodb_buffer_pool_size")
            cursor.execute(
                f"SHOW VARIABLES WHERE Variable_name IN ({', '.join(['%s'] * len(names))})", names
            )
            found = {name: str(value) for name, value in cursor.fetchall()}
            return {
                "vendor": "mysql",
                "transport": "TCP 127.0.0.1",
                "server_version": connection.mysql_server_info,
                "isolation": isolation,
                **found,
            }
        cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
    return {
        "vendor": "sqlite",
        "server_version": version,
        "journal_mode": journal_mode,
        "synchronous": synchronous,
    }
