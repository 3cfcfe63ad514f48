"""Each hand-written statement of ``statements.py`` against its ORM twin, on the same rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest
from django.db import connection
from django.db.models import Case, F, When
from django.utils import timezone

from django_domain_events.models import (
    EVENT_COLUMNS,
    IN_LINE,
    RUNNABLE_STATES,
    Delivery,
    DeliveryState,
    OrderingKey,
    OutboxEvent,
)
from django_domain_events.publishing.writer import writer_for
from django_domain_events.statements import (
    CLAIM_LOAD_COLUMNS,
    DELIVERY_LOAD_COLUMNS,
    claim,
    claim_load,
    condition_sql,
    delivery_load,
    line_statements,
    per_connection,
)

pytestmark = pytest.mark.django_db(transaction=True)

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def _event(**fields: Any) -> OutboxEvent:
    values: dict[str, Any] = {
        "event_type": "tests.Stated",
        "payload": {"n": 1, "total": "12.50"},
        "occurred_at": NOW,
        "correlation_id": str(uuid.uuid4()),
        "headers": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    }
    values.update(fields)
    return OutboxEvent.objects.create(**values)


def _delivery(event: OutboxEvent, **fields: Any) -> Delivery:
    values: dict[str, Any] = {
        "event": event,
        "receiver": "tests.on_stated",
        "dispatcher": "sync",
        "created_at": NOW,
    }
    values.update(fields)
    return Delivery.objects.create(**values)


def _claim_sql(delivery_id: uuid.UUID) -> int:
    statement = claim(connection)
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.params(delivery_id, NOW))
        return 1 if statement.returns and cursor.fetchone() else cursor.rowcount


def _claim_orm(delivery_id: uuid.UUID) -> int:
    return Delivery.objects.filter(pk=delivery_id, state__in=RUNNABLE_STATES).update(
        state=DeliveryState.DELIVERED,
        attempts=F("attempts") + 1,
        delivered_at=NOW,
        last_attempt_at=NOW,
        next_attempt_at=None,
        claimed_by="",
        claimed_until=None,
    )


SETTLED_COLUMNS = (
    "state",
    "attempts",
    "delivered_at",
    "last_attempt_at",
    "next_attempt_at",
    "claimed_by",
    "claimed_until",
)


@pytest.mark.parametrize("state", [*RUNNABLE_STATES, DeliveryState.DEAD, DeliveryState.WAITING])
def test_the_claim_marks_what_its_orm_twin_marks(state: str) -> None:
    event = _event()
    fields = {"state": state, "attempts": 2, "claimed_by": "relay-1", "next_attempt_at": NOW}
    by_sql, by_orm = _delivery(event, **fields), _delivery(event, **fields)

    assert _claim_sql(by_sql.pk) == _claim_orm(by_orm.pk) == (state in RUNNABLE_STATES)
    rows = Delivery.objects.filter(pk__in=[by_sql.pk, by_orm.pk]).order_by("pk")
    assert [row[1:] for row in rows.values_list("pk", *SETTLED_COLUMNS)] == 2 * [
        next(iter(rows.filter(pk=by_orm.pk).values_list(*SETTLED_COLUMNS)))
    ]


def test_the_claim_returns_the_attempt_and_ordering_number_where_the_database_can() -> None:
    delivery = _delivery(_event(), attempts=3, ordering_key="k", ordering_seq=7)
    statement = claim(connection)
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.params(delivery.pk, NOW))
        row = cursor.fetchone() if statement.returns else None
    if statement.returns:
        assert tuple(row) == (4, 7)
    assert Delivery.objects.get(pk=delivery.pk).attempts == 4


def test_the_load_reads_what_select_related_reads() -> None:
    event = _event(ordering_key="order-7", causation_id=str(uuid.uuid4()), version=3)
    delivery = _delivery(event, queue="crm", attempts=2, ordering_key="order-7")

    row = Delivery.objects.select_related("event").get(pk=delivery.pk)
    expected = [getattr(row, name) for name in DELIVERY_LOAD_COLUMNS] + [
        getattr(row.event, name) for name in EVENT_COLUMNS
    ]
    assert delivery_load(connection).fetch(delivery.pk) == expected
    assert isinstance(expected[DELIVERY_LOAD_COLUMNS.index("attempts")], int)
    assert delivery_load(connection).fetch(uuid.uuid4()) is None


def test_the_claim_and_load_is_one_statement_on_postgresql_only() -> None:
    statement = claim_load(connection)
    if connection.vendor != "postgresql":
        # SQLite's RETURNING cannot read the joined event; MySQL has no UPDATE ... RETURNING.
        assert statement.sql is None
        return
    assert statement.sql is not None
    assert statement.sql.startswith("UPDATE ")
    assert "RETURNING" in statement.sql


@pytest.mark.parametrize("state", [*RUNNABLE_STATES, DeliveryState.DEAD, DeliveryState.WAITING])
def test_the_claim_and_load_marks_what_the_claim_marks_and_reads_what_the_load_reads(
    state: str,
) -> None:
    statement = claim_load(connection)
    if statement.sql is None:
        pytest.skip("the claim and the load are two statements on this database")
    event = _event(ordering_key="order-7", causation_id=str(uuid.uuid4()), version=3)
    fields = {
        "state": state,
        "attempts": 2,
        "claimed_by": "relay-1",
        "next_attempt_at": NOW,
        "queue": "crm",
        "ordering_key": "order-7",
        "ordering_seq": 5,
    }
    by_sql, by_orm = _delivery(event, **fields), _delivery(event, **fields)

    found = statement.fetch(by_sql.pk, NOW)

    assert (found is not None) == bool(_claim_orm(by_orm.pk)) == (state in RUNNABLE_STATES)
    rows = Delivery.objects.filter(pk__in=[by_sql.pk, by_orm.pk]).order_by("pk")
    assert [row[1:] for row in rows.values_list("pk", *SETTLED_COLUMNS)] == 2 * [
        next(iter(rows.filter(pk=by_orm.pk).values_list(*SETTLED_COLUMNS)))
    ]
    if found is None:
        return
    row = Delivery.objects.select_related("event").get(pk=by_sql.pk)
    assert found == [getattr(row, name) for name in CLAIM_LOAD_COLUMNS] + [
        getattr(row.event, name) for name in EVENT_COLUMNS
    ]
    assert found[CLAIM_LOAD_COLUMNS.index("attempts")] == 3


def test_the_claim_and_load_claims_nothing_for_an_unknown_delivery() -> None:
    statement = claim_load(connection)
    if statement.sql is None:
        pytest.skip("the claim and the load are two statements on this database")
    assert statement.fetch(uuid.uuid4(), NOW) is None


def test_the_line_condition_is_the_partial_index_condition() -> None:
    # Word for word, so that SQLite's INDEXED BY (which fails the query otherwise) and
    # PostgreSQL's planner both see the index applies.
    [index] = [i for i in Delivery._meta.indexes if i.name == "dde_delivery_ordered_idx"]
    assert index.condition == IN_LINE
    with connection.schema_editor() as editor:
        written = str(index.create_sql(Delivery, editor))
    if not connection.features.supports_partial_indexes:
        # MySQL and MariaDB index every row instead, and no statement names the index.
        assert "WHERE" not in written
        return
    assert condition_sql(Delivery, IN_LINE, connection) in written


def _line(key: str, receiver: str, states: list[str]) -> list[Delivery]:
    event = _event(ordering_key=key)
    return [
        _delivery(event, receiver=receiver, ordering_key=key, ordering_seq=seq, state=state)
        for seq, state in enumerate(states, start=1)
    ]


def test_next_waiting_finds_what_its_orm_twin_finds() -> None:
    _line("a", "r1", [DeliveryState.DELIVERED, DeliveryState.FAILED, "waiting", "waiting"])
    _line("a", "r2", ["waiting"])
    _line("c", "r1", ["waiting"])
    # A delivery published with a due time to come waits with it.
    Delivery.objects.filter(ordering_key="c").update(next_attempt_at=NOW + dt.timedelta(hours=1))
    sql = line_statements(connection)
    for key, receiver in [("a", "r1"), ("a", "r2"), ("b", "r1"), ("c", "r1")]:
        with connection.cursor() as cursor:
            cursor.execute(sql.next_waiting, [sql.moment(NOW), key, receiver])
            found = cursor.fetchone()
        twin = (
            Delivery.objects.in_lines()
            .filter(ordering_key=key, receiver=receiver, state=DeliveryState.WAITING)
            .order_by("ordering_seq")
            .annotate(later=Case(When(next_attempt_at__gt=NOW, then=1), default=0))
            .values_list("id", "dispatcher", "queue", "attempts", "ordering_seq", "later")
            .first()
        )
        if twin is None:
            assert found is None
        else:
            assert (uuid.UUID(str(found[0])), *found[1:]) == twin
    assert found is not None
    assert found[5] == 1


def test_busy_finds_what_its_orm_twin_finds() -> None:
    _line("a", "r1", [DeliveryState.DELIVERED, DeliveryState.DEAD])
    _line("b", "r1", [DeliveryState.PENDING, "waiting"])
    _line("c", "r2", [DeliveryState.DELIVERED])
    sql = line_statements(connection)
    keys, receivers = ["a", "b", "c"], ["r1", "r2"]
    with connection.cursor() as cursor:
        cursor.execute(sql.busy(len(keys), len(receivers)), [*keys, *receivers])
        found = set(cursor.fetchall())
    twin = set(
        Delivery.objects.in_lines()
        .filter(ordering_key__in=keys, receiver__in=receivers)
        .values_list("receiver", "ordering_key", "state")
        .distinct()
    )
    assert found == twin == {("r1", "a", "dead"), ("r1", "b", "pending"), ("r1", "b", "waiting")}


def test_ahead_finds_what_its_orm_twin_finds() -> None:
    first, second, third = _line("a", "r1", [DeliveryState.FAILED, DeliveryState.DEAD, "waiting"])
    sql = line_statements(connection)
    for states in ([DeliveryState.FAILED], [DeliveryState.PENDING], [DeliveryState.DEAD]):
        for place, aside in [(third, third), (second, first), (third, second)]:
            with connection.cursor() as cursor:
                cursor.execute(
                    sql.ahead(len(states)),
                    ["a", "r1", place.ordering_seq, *states, sql.uuid(aside.pk)],
                )
                found = cursor.fetchone() is not None
            twin = (
                Delivery.objects.in_lines()
                .filter(
                    ordering_key="a",
                    receiver="r1",
                    ordering_seq__lt=place.ordering_seq,
                    state__in=states,
                )
                .exclude(pk=aside.pk)
                .exists()
            )
            assert found == twin, (states, place.ordering_seq, aside.ordering_seq)


def test_release_changes_what_its_orm_twin_changes() -> None:
    waiting_sql, waiting_orm, pending = _line("a", "r1", ["waiting", "waiting", "pending"])
    sql = line_statements(connection)
    changed = []
    for delivery in (waiting_sql, pending):
        with connection.cursor() as cursor:
            cursor.execute(
                sql.release,
                ["dispatched", sql.moment(NOW), "task-1", sql.moment(NOW), sql.uuid(delivery.pk)],
            )
            changed.append(cursor.rowcount)
    twin = [
        Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.WAITING).update(
            state="dispatched", dispatched_at=NOW, task_id="task-1", next_attempt_at=NOW
        )
        for delivery in (waiting_orm, pending)
    ]
    assert changed == twin == [1, 0]
    columns = ("state", "dispatched_at", "task_id", "next_attempt_at")
    rows = Delivery.objects.values_list(*columns)
    assert rows.get(pk=waiting_sql.pk) == rows.get(pk=waiting_orm.pk)


def test_the_key_lock_reads_the_last_number() -> None:
    OrderingKey.objects.create(key="a", last_seq=41)
    sql = line_statements(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql.lock, ["a"])
        found = cursor.fetchone()
        cursor.execute(sql.lock, ["none"])
        missing = cursor.fetchone()
    assert found[0] == OrderingKey.objects.get(key="a").last_seq
    assert missing is None


def test_the_writer_stores_what_the_orm_reads_back() -> None:
    event_id, delivery_id = uuid.uuid4(), uuid.uuid4()
    now = timezone.now()
    payload = msgspec.Raw(b'{"n":1}')  # as publish() hands it over: JSON already encoded
    event = (event_id, "tests.Stated", 2, payload, now, str(uuid.uuid4()), None, "k", {})
    delivery = (
        delivery_id,
        event_id,
        "tests.on_stated",
        "sync",
        "",
        "pending",
        None,
        now,
        None,
        "k",
        "",
        3,
    )
    writer_for(connection).write([event], [delivery])

    stored = OutboxEvent.objects.get(pk=event_id)
    assert [getattr(stored, name) for name in EVENT_COLUMNS] == [
        event_id,
        "tests.Stated",
        2,
        {"n": 1},
        now,
        event[5],
        None,
        "k",
        {},
    ]
    row = Delivery.objects.get(pk=delivery_id)
    assert (row.event_id, row.state, row.ordering_seq, row.attempts, row.last_error) == (
        event_id,
        "pending",
        3,
        0,
        "",
    )


def test_a_statement_is_built_once_per_connection() -> None:
    built: list[object] = []

    @per_connection
    def statement(connection: Any) -> object:
        built.append(connection)
        return object()

    assert statement(connection) is statement(connection)
    assert built == [connection]
