"""Multi-row INSERTs of outbox rows: the write half of ``publish()``, kept lean.

``bulk_create`` builds model instances and compiles SQL on every call, which costs more than
the INSERT itself on SQLite. Here rows are value tuples in a fixed column order, each column
adapted by its field type's known conversion, and the SQL text is cached per row count on the
connection. On PostgreSQL the events and their deliveries go in one statement (a data-modifying
``WITH``), saving a round trip per publish.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from django_domain_events.models import DELIVERY_COLUMNS, EVENT_COLUMNS, Delivery, OutboxEvent
from django_domain_events.statements import per_connection

DELIVERY_LITERALS = {"attempts": "0", "last_error": "''", "traceback": "''", "claimed_by": "''"}
"""Columns every new delivery starts with the same value in, written into the SQL text: fewer
parameters to adapt and bind per row."""

Row = Sequence[Any]
Adapter = Callable[[Any], Any]

# Parameters per statement that no supported backend refuses (SQLite's historical limit).
_SAFE_PARAMETERS = 999

# From this many events a publish on PostgreSQL sends arrays rather than rows of parameters.
_UNNEST_FROM_ROWS = 16


class _DatetimeMemo:
    """One publish stamps the same datetime object into several columns: adapt it once."""

    __slots__ = ("adapted", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.adapted: Any = None


def _adapter(
    field: models.Field[Any, Any], connection: BaseDatabaseWrapper, memo: _DatetimeMemo
) -> Adapter:
    """The cheapest correct conversion of this field's Python values to database values.

    Django's ``get_db_prep_save`` runs a chain of checks per value; for the few field types the
    outbox writes, the outcome for the expected Python type is known in advance. Any other
    field, or an unexpected value type, takes Django's own path.
    """
    generic = field.get_db_prep_save
    if isinstance(field, models.ForeignKey):
        return _adapter(field.target_field, connection, memo)
    if isinstance(field, models.UUIDField):
        if connection.features.has_native_uuid_field:
            return lambda value: (
                value if type(value) is uuid.UUID or value is None else generic(value, connection)
            )
        return lambda value: value.hex if type(value) is uuid.UUID else generic(value, connection)
    if isinstance(field, models.CharField | models.TextField):
        return lambda value: value if type(value) is str else generic(value, connection)
    if isinstance(field, models.IntegerField):
        return lambda value: value if type(value) is int else generic(value, connection)
    if isinstance(field, models.JSONField):
        adapt_json, encoder = connection.ops.adapt_json_value, field.encoder
        return lambda value: adapt_json(value, encoder)
    if isinstance(field, models.DateTimeField):

        def adapt_datetime(value: Any) -> Any:
            if value is None:
                return None  # leaves the memo to the datetime around it
            if value is not memo.value:
                memo.value, memo.adapted = value, generic(value, connection)
            return memo.adapted

        return adapt_datetime
    return lambda value: generic(value, connection)


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    return cast("models.Field[Any, Any]", model._meta.get_field(name))


class _Statement:
    """A multi-row INSERT of fixed columns into one table, SQL cached by row count."""

    def __init__(
        self,
        model: type[models.Model],
        columns: tuple[str, ...],
        connection: BaseDatabaseWrapper,
        memo: _DatetimeMemo,
        literals: dict[str, str] | None = None,
    ) -> None:
        self.connection = connection
        self.fields = [_field(model, name) for name in columns]
        self.adapters = [_adapter(field, connection, memo) for field in self.fields]
        self.literals = list((literals or {}).values())
        quote = connection.ops.quote_name
        names = [
            str(field.column)
            for field in self.fields + [_field(model, name) for name in literals or {}]
        ]
        self.prefix = (
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(name) for name in names)}) VALUES "
        )
        self.one_row = "(" + ", ".join(["%s"] * len(columns) + self.literals) + ")"
        self.sql_by_size: dict[int, str] = {}
        self.unnest_by_shape: dict[tuple[bool, ...], str] = {}

    def sql(self, rows: int) -> str:
        sql = self.sql_by_size.get(rows)
        if sql is None:
            sql = self.sql_by_size[rows] = self.prefix + ", ".join([self.one_row] * rows)
        return sql

    def unnest(self, rows: Sequence[Row]) -> tuple[str, list[Any]]:
        """PostgreSQL: the INSERT of any number of rows from one array per column, whose text
        and parameter count do not grow with the rows. A column with one value in every row
        (a state, a timestamp, an empty string) is sent once rather than as an array, sparing
        the database an array and the driver the quoting of each of its items."""
        columns = list(zip(*rows, strict=True))
        # The first column is the primary key: it always varies, so there is an array.
        constant = (False, *(column.count(column[0]) == len(column) for column in columns[1:]))
        sql = self.unnest_by_shape.get(constant)
        if sql is None:
            selected, arrays, names = [], [], []
            for index, (field, single) in enumerate(zip(self.fields, constant, strict=True)):
                db_type = field.db_type(self.connection)
                if single:
                    selected.append(f"%s::{db_type}")
                else:
                    names.append(f"c{index}")
                    selected.append(f"c{index}")
                    arrays.append(f"%s::{db_type}[]")
            selected += self.literals
            sql = self.unnest_by_shape[constant] = (
                f"{self.prefix.removesuffix(' VALUES ')} SELECT {', '.join(selected)} "
                f"FROM unnest({', '.join(arrays)}) AS given ({', '.join(names)})"
            )
        adapters = self.adapters
        scalars = [adapters[i](column[0]) for i, column in enumerate(columns) if constant[i]]
        arrays_params = [
            [adapters[i](value) for value in column]
            for i, column in enumerate(columns)
            if not constant[i]
        ]
        return sql, scalars + arrays_params

    def params(self, rows: Sequence[Row]) -> list[Any]:
        adapters = self.adapters
        return [adapt(value) for row in rows for adapt, value in zip(adapters, row, strict=True)]

    def batch_size(self, rows: Sequence[Row]) -> int:
        if len(rows) * len(self.fields) <= _SAFE_PARAMETERS:
            return len(rows)
        return max(1, self.connection.ops.bulk_batch_size(self.fields, rows) or len(rows))

    def batches(self, rows: Sequence[Row]) -> list[Sequence[Row]]:
        size = self.batch_size(rows)
        return [rows[start : start + size] for start in range(0, len(rows), size)]


class OutboxWriter:
    """Writes event and delivery rows on one connection."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        memo = _DatetimeMemo()
        self.connection = connection
        self.events = _Statement(OutboxEvent, EVENT_COLUMNS, connection, memo)
        self.deliveries = _Statement(
            Delivery, DELIVERY_COLUMNS, connection, memo, DELIVERY_LITERALS
        )
        # Django creates PostgreSQL foreign keys DEFERRABLE INITIALLY DEFERRED, so deliveries
        # may reference events inserted by the same statement.
        self.one_statement = connection.vendor == "postgresql"

    def write(
        self, events: Sequence[Row], deliveries: Sequence[Row], *, notify: str | None = None
    ) -> None:
        """INSERT ``events`` then ``deliveries`` (value tuples in the column orders above), and
        on PostgreSQL ``NOTIFY`` channel ``notify`` with them, in the same statement where the
        rows fit in one."""
        event_batches = self.events.batches(events)
        delivery_batches = self.deliveries.batches(deliveries) if deliveries else []
        with self.connection.cursor() as cursor:
            if self.one_statement and len(events) >= _UNNEST_FROM_ROWS:
                # Many rows: one array per column, both tables in one statement.
                events_sql, params = self.events.unnest(events)
                if deliveries:
                    deliveries_sql, delivery_params = self.deliveries.unnest(deliveries)
                    params += delivery_params
                else:
                    deliveries_sql = "SELECT 1"
                cursor.execute(*_together(events_sql, deliveries_sql, params, notify))
                return
            if self.one_statement and len(event_batches) == 1 and len(delivery_batches) == 1:
                [event_batch], [delivery_batch] = event_batches, delivery_batches
                params = self.events.params(event_batch) + self.deliveries.params(delivery_batch)
                events_sql = self.events.sql(len(event_batch))
                deliveries_sql = self.deliveries.sql(len(delivery_batch))
                cursor.execute(*_together(events_sql, deliveries_sql, params, notify))
                return
            for batch in event_batches:
                cursor.execute(self.events.sql(len(batch)), self.events.params(batch))
            for batch in delivery_batches:
                cursor.execute(self.deliveries.sql(len(batch)), self.deliveries.params(batch))
            if notify is not None:
                cursor.execute("SELECT pg_notify(%s, '')", [notify])


def _together(
    events_sql: str, deliveries_sql: str, params: list[Any], notify: str | None
) -> tuple[str, list[Any]]:
    """One PostgreSQL statement that inserts the events, then the deliveries, and sends the
    ``NOTIFY`` if there is one (a data-modifying ``WITH`` runs whether or not it is read)."""
    if notify is None:
        return f"WITH new_events AS ({events_sql}) {deliveries_sql}", params
    return (
        f"WITH new_events AS ({events_sql}), new_deliveries AS ({deliveries_sql}) "
        "SELECT pg_notify(%s, '')",
        [*params, notify],
    )


writer_for = per_connection(OutboxWriter)
"""The connection's ``OutboxWriter`` (one per thread and alias)."""
