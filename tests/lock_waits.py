"""Seeing, from any connection, that another one is blocked on a row lock: for the tests that
hold a lock until a second copy of something waits on it, so that the two really overlap."""

from __future__ import annotations

from django.db import connection


def lock_waiters() -> int:
    """Connections to this test database waiting for a lock right now (PostgreSQL or
    MariaDB)."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # InnoDB's transactions, each joined to the connection (thread) that runs it.
            cursor.execute(
                "SELECT count(*) FROM information_schema.INNODB_TRX AS trx "
                "JOIN information_schema.PROCESSLIST AS process "
                "ON process.ID = trx.trx_mysql_thread_id "
                "WHERE process.DB = DATABASE() AND trx.trx_state = 'LOCK WAIT'"
            )
        else:
            # Activity is snapshotted once per transaction, and callers poll inside one.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        (count,) = cursor.fetchone()
    return int(count)
