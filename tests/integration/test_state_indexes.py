"""The delivery state indexes hold only deliveries that need attention (failed, scheduled,
waiting, dead, cancelled): publishing and settling do not write to them, so they neither slow
a publish nor grow with the outbox, and the queries for those states still read them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import QuerySet

from django_domain_events import GiveUp, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import NEEDS_ATTENTION, Delivery, DeliveryState

pytestmark = pytest.mark.django_db(transaction=True)

EVENT = "integration_state_indexes.happened"
STATE_INDEXES = ("dde_delivery_attention_idx", "dde_delivery_rcv_attention_idx")
FULL_INDEXES = ("dde_delivery_owed_idx", "dde_delivery_receiver_idx")
"""What the state indexes were before migration 0011: full, every delivery in them."""


def entries(index: str) -> int:
    """Rows in ``index``, read from the index itself."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # A partial index is read only by a query that repeats its condition.
            table, condition = "domain_events_delivery", _condition(index)
            cursor.execute(f"SELECT COUNT(*) FROM {table} INDEXED BY {index} WHERE {condition}")
        else:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE relname = %s",
                [index],
            )
        return int(cursor.fetchone()[0])


def _condition(index: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [index])
        (sql,) = cursor.fetchone()
    condition = str(sql).partition(" WHERE ")[2]
    return condition or "1"


@contextmanager
def no_sequential_scans() -> Iterator[None]:
    """On PostgreSQL, make any usable index cheaper than reading the table, so a plan shows
    which index a query can read even over a handful of rows."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            yield
        finally:
            cursor.execute("RESET enable_seqscan")


def test_publishing_and_delivering_write_nothing_to_the_state_indexes(
    receiver_registry: Registry,
) -> None:
    if connection.vendor not in ("sqlite", "postgresql"):
        pytest.skip("MySQL and MariaDB have no partial indexes: these indexes are full there")
    for name in ("first", "second", "third"):
        receiver(EVENT, name=f"integration_state_indexes.{name}")(lambda event: None)

    for n in range(20):
        publish(EVENT, {"n": n})

    assert Delivery.objects.filter(state=DeliveryState.DELIVERED).count() == 60
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE domain_events_delivery")
    assert {index: entries(index) for index in STATE_INDEXES} == dict.fromkeys(STATE_INDEXES, 0)


def test_the_queries_for_deliveries_that_need_attention_read_the_state_indexes(
    receiver_registry: Registry,
) -> None:
    if connection.vendor not in ("sqlite", "postgresql"):
        pytest.skip("the plans are those of SQLite and PostgreSQL")

    @receiver(EVENT, name="integration_state_indexes.gives_up")
    def gives_up(event: Any) -> None:
        raise GiveUp("cannot")

    publish(EVENT, {"n": 1})
    rows = Delivery.objects.all()
    queries: dict[str, QuerySet[Delivery, Any]] = {
        "retries due": rows.retry_due(),
        "schedules due": rows.scheduled_due(),
        "dead letters": rows.dead(),
        "waiting": rows.filter(state=DeliveryState.WAITING),
        "a receiver's dead letters": rows.filter(
            receiver="integration_state_indexes.gives_up", state=DeliveryState.DEAD
        ),
        "receivers that need attention": rows.filter(NEEDS_ATTENTION)
        .order_by()
        .values("receiver")
        .distinct(),
    }
    assert list(rows.dead().values_list("receiver", flat=True)) == [
        "integration_state_indexes.gives_up"
    ]

    with no_sequential_scans():
        plans = {name: queryset.explain() for name, queryset in queries.items()}

    for name, plan in plans.items():
        assert any(index in plan for index in STATE_INDEXES), (name, plan)


def definitions(names: tuple[str, ...]) -> dict[str, str]:
    """The SQL that defines each of the indexes ``names`` that exists."""
    marks = ", ".join(["%s"] * len(names))
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
                list(names),
            )
        else:
            cursor.execute(
                f"SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN ({marks})",
                list(names),
            )
        return dict(cursor.fetchall())


def test_the_migration_makes_the_state_indexes_partial_and_back() -> None:
    if connection.vendor not in ("sqlite", "postgresql"):
        pytest.skip("MySQL and MariaDB keep their full indexes: the migration renames them")
    app = "django_domain_events"
    latest = MigrationLoader(connection).graph.leaf_nodes(app)[0][1]
    try:
        call_command("migrate", app, "0010_inbox", verbosity=0)
        before = definitions(FULL_INDEXES + STATE_INDEXES)
    finally:
        call_command("migrate", app, latest, verbosity=0)
    after = definitions(FULL_INDEXES + STATE_INDEXES)

    assert set(before) == set(FULL_INDEXES)
    assert not any("WHERE" in sql for sql in before.values()), before
    assert set(after) == set(STATE_INDEXES)
    assert all("WHERE" in sql and "'cancelled'" in sql for sql in after.values()), after
