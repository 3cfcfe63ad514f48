"""On an SQLite file, the relay's claim holds its own against a process that writes beside it.

A transaction that reads, then writes, fails at once with "database is locked" when another
connection wrote in between: its snapshot is stale, and SQLite does not wait. The claim reads
what is owed, then updates it, so it takes the write lock first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.utils import load_backend

from django_domain_events import NamedEvent, publish, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState

pytestmark = pytest.mark.django_db(transaction=True)

ALIAS = "sqlite_file"


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Path]:
    """A database alias on an SQLite file in WAL mode, migrated, for this test only."""
    path = tmp_path / "outbox.sqlite3"
    wanted = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    configured = connections.configure_settings({"default": dict(wanted), ALIAS: wanted})
    # A connection made here, not configured in DATABASES: the test case allows it.
    connections[ALIAS] = load_backend(wanted["ENGINE"]).DatabaseWrapper(configured[ALIAS], ALIAS)
    try:
        with connections[ALIAS].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode = wal")
        call_command("migrate", database=ALIAS, verbosity=0)
        yield path
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]


def write_beside(path: Path) -> Callable[..., Any]:
    """An execute wrapper that, after the first statement of the claim's transaction, commits a
    write through another connection (as a web process would), once."""
    done = False

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any):
        nonlocal done
        result = execute(sql, params, many, context)
        if not done and connections[ALIAS].in_atomic_block:
            done = True
            other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
            try:
                other.execute("CREATE TABLE IF NOT EXISTS beside (n INTEGER)")
                other.execute("INSERT INTO beside VALUES (1)")
            except sqlite3.OperationalError:
                pass  # the claim holds the write lock already: the other writer waits its turn
            finally:
                other.close()
        return result

    return wrapper


def test_a_write_beside_the_claim_does_not_fail_it(
    sqlite_file: Path, receiver_registry: Registry
) -> None:
    ran: list[int] = []

    @receiver("sqlite_claims.ticked", name="sqlite_claims.record")
    def record(event: NamedEvent) -> None:
        ran.append(event.payload["n"])

    with use_dispatcher("deferred"):
        for n in range(3):
            publish("sqlite_claims.ticked", {"n": n}, using=ALIAS)

    with connections[ALIAS].execute_wrapper(write_beside(sqlite_file)):
        totals = Relay(using=ALIAS, grace=0).run_pass()

    assert totals.errors == 0
    assert sorted(ran) == [0, 1, 2]
    states = set(Delivery.objects.using(ALIAS).values_list("state", flat=True))
    assert states == {DeliveryState.DELIVERED}
