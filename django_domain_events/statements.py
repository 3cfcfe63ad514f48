"""Hand-written SQL for the statements made once per delivery, built once per connection.

The ORM spends longer compiling these small statements than the database spends running them,
so each is built from the models' metadata the first time a connection needs it and kept on
that connection (one per thread and alias). ``tests/unit/test_statements.py`` holds each
against its ORM twin.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, Q
from django.db.models.sql import Query

from django_domain_events.models import (
    EVENT_COLUMNS,
    IN_LINE,
    RUNNABLE_STATES,
    Delivery,
    DeliveryState,
    OrderingKey,
    OutboxEvent,
)

T = TypeVar("T")

_CACHE_ATTR = "_domain_events_statements"


def per_connection(build: Callable[[BaseDatabaseWrapper], T]) -> Callable[[BaseDatabaseWrapper], T]:
    """Make ``build(connection)`` run once per connection; later calls return what it built."""

    def cached(connection: BaseDatabaseWrapper) -> T:
        store: dict[Any, Any] = connection.__dict__.setdefault(_CACHE_ATTR, {})
        try:
            return cast(T, store[build])
        except KeyError:
            built = store[build] = build(connection)
            return built

    cached.__doc__ = build.__doc__
    return cached


NO_FLUSH = "(SELECT set_config('synchronous_commit', 'off', true)) AS durability"
"""A ``FROM`` item that makes the statement's own transaction commit without waiting for
PostgreSQL's WAL flush: for a write whose loss in a crash only leaves a delivery owed (the
relay's claim, the dispatcher's mark), run in a transaction of its own, never a caller's."""


def condition_sql(model: type[Model], condition: Q, connection: BaseDatabaseWrapper) -> str:
    """``condition`` as SQL with its values written in, as Django writes a partial index's
    ``WHERE`` (``Index._get_condition_sql``): a query that repeats it word for word lets every
    database see it may read that index."""
    query = Query(model=model, alias_cols=False)
    where = query.build_where(condition)
    sql, params = where.as_sql(query.get_compiler(connection=connection), connection)
    connection.ensure_connection()
    quote_value = connection.schema_editor().quote_value
    return str(sql % tuple(quote_value(param) for param in params))


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    return cast("Field[Any, Any]", model._meta.get_field(name))


def _column(model: type[Model], name: str, connection: BaseDatabaseWrapper) -> str:
    return str(connection.ops.quote_name(str(_field(model, name).column)))


def returns_from_update(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``UPDATE ... RETURNING`` works: PostgreSQL, SQLite from 3.35; not MySQL."""
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)


# Delivery: the claim ---------------------------------------------------------------------------


def _claim_set(*, delivery: str = "", joining: str = "") -> str:
    """The claim's ``SET`` clause and ``WHERE`` condition, their placeholders in the order of
    ``Claim.params()``. Where the UPDATE joins another table (``joining``: its ``FROM``),
    ``delivery`` ("d.") qualifies the delivery's own columns."""
    runnable = ", ".join(["%s"] * len(RUNNABLE_STATES))
    return (
        f"SET state = %s, attempts = {delivery}attempts + 1, delivered_at = %s, "
        f"last_attempt_at = %s, next_attempt_at = NULL, claimed_by = '', claimed_until = NULL "
        f"{joining}WHERE {delivery}id = %s AND {delivery}state IN ({runnable})"
    )


class Claim:
    """Marks one runnable delivery delivered, in the transaction of its receiver's work:
    ``Delivery.objects.filter(pk=..., state__in=RUNNABLE_STATES).update(state=DELIVERED,
    attempts=F("attempts") + 1, ...)``, returning the attempt and ordering number where the
    database can."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.returns = returns_from_update(connection)
        self.sql = (
            f"UPDATE {connection.ops.quote_name(Delivery._meta.db_table)} "
            + _claim_set()
            + (" RETURNING attempts, ordering_seq" if self.returns else "")
        )
        self._stamp = _field(Delivery, "delivered_at")
        self._id = _field(Delivery, "id")

    def params(self, delivery_id: uuid.UUID, now: Any) -> list[Any]:
        stamp = self._stamp.get_db_prep_value(now, self.connection)
        return [
            DeliveryState.DELIVERED,
            stamp,
            stamp,
            self._id.get_db_prep_value(delivery_id, self.connection),
            *RUNNABLE_STATES,
        ]


claim = per_connection(Claim)


# Delivery with its event: the load -------------------------------------------------------------

DELIVERY_LOAD_COLUMNS = ("receiver", "dispatcher", "queue", "state", "attempts", "ordering_key")
"""The ``Delivery`` columns ``DeliveryLoad`` reads, before its event's ``EVENT_COLUMNS``."""

_Columns = list[tuple[type[Model], str, str]]


def _joined(names: tuple[str, ...], connection: BaseDatabaseWrapper) -> tuple[_Columns, str]:
    # The delivery columns ``names`` (table alias d), then its event's EVENT_COLUMNS (e).
    columns: _Columns = [(Delivery, "d", name) for name in names] + [
        (OutboxEvent, "e", name) for name in EVENT_COLUMNS
    ]
    listed = ", ".join(
        f"{alias}.{_column(model, name, connection)}" for model, alias, name in columns
    )
    return columns, listed


class _Converted:
    """Reads one row of ``columns`` and converts its values as the ORM converts them."""

    def __init__(self, connection: BaseDatabaseWrapper, columns: _Columns) -> None:
        self.connection = connection
        self.converters: list[tuple[int, Any, list[Any]]] = []
        for index, (model, _, name) in enumerate(columns):
            column = _field(model, name).get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                self.converters.append((index, column, found))

    def _fetch(self, sql: str, params: list[Any]) -> list[Any] | None:
        connection = self.connection
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = list(row)
        for index, column, converters in self.converters:
            for convert in converters:
                values[index] = convert(values[index], column, connection)
        return values


class DeliveryLoad(_Converted):
    """One delivery's row joined with its event's, converted as the ORM converts them:
    ``Delivery.objects.select_related("event").get(pk=...)``, reduced to the values of
    ``DELIVERY_LOAD_COLUMNS`` then ``models.EVENT_COLUMNS``."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        quote = connection.ops.quote_name
        columns, selected = _joined(DELIVERY_LOAD_COLUMNS, connection)
        super().__init__(connection, columns)
        self.sql = (
            f"SELECT {selected} "
            f"FROM {quote(Delivery._meta.db_table)} d "
            f"JOIN {quote(OutboxEvent._meta.db_table)} e "
            f"ON e.{_column(OutboxEvent, 'id', connection)} = "
            f"d.{_column(Delivery, 'event', connection)} "
            f"WHERE d.{_column(Delivery, 'id', connection)} = %s"
        )
        self._id = _field(Delivery, "id")

    def fetch(self, delivery_id: uuid.UUID) -> list[Any] | None:
        """The converted values, or None if there is no such delivery."""
        return self._fetch(self.sql, [self._id.get_db_prep_value(delivery_id, self.connection)])


delivery_load = per_connection(DeliveryLoad)


# Delivery with its event: the claim and the load in one ----------------------------------------

CLAIM_LOAD_COLUMNS = ("receiver", "dispatcher", "queue", "attempts", "ordering_key", "ordering_seq")
"""The ``Delivery`` columns ``ClaimLoad`` returns (as the claim left them), before its event's
``EVENT_COLUMNS``."""


class ClaimLoad(_Converted):
    """``Claim`` and ``DeliveryLoad`` in one statement, where the database can: the claim's
    UPDATE joined with the delivery's event, returning ``CLAIM_LOAD_COLUMNS`` then
    ``models.EVENT_COLUMNS``, converted as the ORM converts them.

    ``sql`` is None where it cannot: SQLite's ``RETURNING`` does not reach the tables an
    ``UPDATE ... FROM`` joins, MySQL and MariaDB have no ``UPDATE ... RETURNING``. There the
    claim and the load stay two statements (on SQLite, calls within the process)."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        columns, returned = _joined(CLAIM_LOAD_COLUMNS, connection)
        super().__init__(connection, columns)
        self._claim = claim(connection)
        self.sql: str | None = None
        if connection.vendor != "postgresql":
            return
        quote = connection.ops.quote_name
        # The claim's own SET and condition (its parameters are Claim.params()), joined with
        # the delivery's event.
        joining = f"FROM {quote(OutboxEvent._meta.db_table)} AS e "
        self.sql = (
            f"UPDATE {quote(Delivery._meta.db_table)} AS d "
            + _claim_set(delivery="d.", joining=joining)
            + f" AND e.{_column(OutboxEvent, 'id', connection)} = "
            f"d.{_column(Delivery, 'event', connection)} "
            f"RETURNING {returned}"
        )

    def fetch(self, delivery_id: uuid.UUID, now: Any) -> list[Any] | None:
        """Claim the delivery ``delivery_id`` if it is still runnable, as ``Claim`` does, and
        return the converted values; None if it was not claimed (settled, taken, or no such
        delivery). Only where ``sql`` is set."""
        assert self.sql is not None
        return self._fetch(self.sql, self._claim.params(delivery_id, now))


claim_load = per_connection(ClaimLoad)


# Delivery and OrderingKey: the ordering lines ----------------------------------------------------


class LineStatements:
    """What publishing and settling ask of ordering lines, once per ordered delivery.

    Each repeats the condition of ``dde_delivery_ordered_idx`` (``models.IN_LINE``) as that
    index's ``WHERE`` is written, so the database sees it may read that small index rather
    than every delivery of the receiver; SQLite, which has no statistics to choose by, is told
    to (``INDEXED BY``).
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        quote = connection.ops.quote_name
        deliveries = quote(Delivery._meta.db_table)
        table = deliveries
        if connection.vendor == "sqlite":
            table += f" INDEXED BY {quote('dde_delivery_ordered_idx')}"
        in_line = condition_sql(Delivery, IN_LINE, connection)
        self.table, self.in_line = table, in_line
        waiting = f"'{DeliveryState.WAITING.value}'"
        self.next_waiting = (
            f"SELECT id, dispatcher, queue, attempts, ordering_seq, "
            f"CASE WHEN next_attempt_at > %s THEN 1 ELSE 0 END FROM {table} "
            f"WHERE {in_line} AND ordering_key = %s AND receiver = %s "
            f"AND state = {waiting} ORDER BY ordering_seq LIMIT 1"
        )
        """The first waiting delivery of a line (now, key, receiver), and 1 if it is due later
        than now (published with a due time)."""
        self.release = (
            f"UPDATE {deliveries} SET state = %s, dispatched_at = %s, task_id = %s, "
            f"next_attempt_at = %s WHERE id = %s AND state = {waiting}"
        )
        """Let one waiting delivery go: its new state, dispatched_at, task_id, next attempt."""
        self.reschedule = (
            f"UPDATE {deliveries} SET state = '{DeliveryState.SCHEDULED.value}' "
            f"WHERE id = %s AND state = {waiting}"
        )
        """Let one waiting delivery with a due time to come go as scheduled, keeping it."""
        # SQLite has no row locks: its transaction holds the database's write lock already.
        self.lock = (
            f"SELECT last_seq FROM {quote(OrderingKey._meta.db_table)} WHERE {quote('key')} = %s"
            + (" FOR UPDATE" if connection.features.has_select_for_update else "")
        )
        """Lock a key's row, returning its last sequence number."""
        self._sized: dict[tuple[str, int, int], str] = {}
        self._id = _field(Delivery, "id")
        self._moment = _field(Delivery, "dispatched_at")

    def busy(self, keys: int, receivers: int) -> str:
        """(receiver, key, state) of every unsettled-or-dead delivery in the lines of any of
        ``keys`` keys and ``receivers`` receivers."""
        return self._sized_sql("busy", keys, receivers)

    def ahead(self, states: int) -> str:
        """1 if a delivery in one of ``states`` states stands before a place in a line (key,
        receiver, sequence number), the delivery at that place (id) aside."""
        return self._sized_sql("ahead", 0, states)

    def _sized_sql(self, kind: str, first: int, second: int) -> str:
        sql = self._sized.get((kind, first, second))
        if sql is None:
            one, two = ", ".join(["%s"] * first), ", ".join(["%s"] * second)
            if kind == "busy":
                sql = (
                    f"SELECT DISTINCT receiver, ordering_key, state FROM {self.table} "
                    f"WHERE {self.in_line} AND ordering_key IN ({one}) AND receiver IN ({two})"
                )
            else:
                sql = (
                    f"SELECT 1 FROM {self.table} WHERE {self.in_line} AND ordering_key = %s "
                    f"AND receiver = %s AND ordering_seq < %s AND state IN ({two}) "
                    f"AND id <> %s LIMIT 1"
                )
            self._sized[(kind, first, second)] = sql
        return sql

    def uuid(self, value: uuid.UUID) -> Any:
        """A delivery id as this database takes it."""
        return self._id.get_db_prep_value(value, self.connection)

    def moment(self, value: Any) -> Any:
        """A datetime as this database takes it."""
        return self._moment.get_db_prep_value(value, self.connection)


line_statements = per_connection(LineStatements)
