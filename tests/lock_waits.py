"""Seeing, from any connection, that another one is blocked on a row lock: for the tests that
hold a lock until a second copy of something waits on it, so that the two really overlap."""

from __future__ import annotations

import re

from django.db import connection


def lock_waiters() -> int:
    """Connections to this test database waiting for a lock right now (PostgreSQL or
    MariaDB)."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # InnoDB's status lists each waiting transaction with the lock it waits for, which
            # names its table's database (its INNODB_TRX table can miss a waiting one); the
            # section before, on the latest deadlock, is history.
            cursor.execute("SHOW ENGINE INNODB STATUS")
            status = cursor.fetchone()[2].rpartition("\nTRANSACTIONS\n")[2]
            database = re.escape(str(connection.settings_dict["NAME"]))
            return len(re.findall(rf"TO BE GRANTED:\n[^\n]*`{database}`\.", status))
        else:
            # Activity is snapshotted once per transaction, and callers poll inside one.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        (count,) = cursor.fetchone()
    return int(count)
