"""Queries the rest of the app makes on the outbox, kept in one place."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

if TYPE_CHECKING:
    from .models import Delivery, OutboxEvent  # noqa: F401 - named in the generics below


Adapter = Callable[[Any], Any]


class OutboxEventQuerySet(models.QuerySet["OutboxEvent"]):
    """Queries over outbox events."""

    def of_type(self, event_type: str) -> OutboxEventQuerySet:
        """Events of one type."""
        return self.filter(event_type=event_type)


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    """Queries over deliveries."""

    def runnable(self) -> DeliveryQuerySet:
        """Deliveries whose receiver may still run: pending, dispatched or failed."""
        from .models import RUNNABLE_STATES

        return self.filter(state__in=RUNNABLE_STATES)

    def owed(self, now: dt.datetime | None = None) -> DeliveryQuerySet:
        """Deliveries due now: pending or failed with ``next_attempt_at`` reached.

        Without ``now`` every pending or failed delivery counts, due or not.
        """
        from .models import DeliveryState

        due: dict[str, Any] = {"next_attempt_at__lte": now} if now is not None else {}
        return self.filter(state__in=(DeliveryState.PENDING, DeliveryState.FAILED), **due)

    def dead(self) -> DeliveryQuerySet:
        """Dead letters."""
        from .models import DeliveryState

        return self.filter(state=DeliveryState.DEAD)


OutboxEventManager = models.Manager.from_queryset(OutboxEventQuerySet)
DeliveryManager = models.Manager.from_queryset(DeliveryQuerySet)


# Rows per statement below which no backend's parameter limit can be reached (SQLite's lowest).
_SAFE_PARAMETERS = 999


def _adapter(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> Adapter:
    """The cheapest correct way to turn this field's Python values into database values.

    Django's ``get_db_prep_save`` runs a chain of checks per value that costs more than the
    INSERT itself on SQLite; for the handful of field types the outbox writes, the result is
    known in advance. Any other field, or an unexpected value type, takes Django's path.
    """
    generic = field.get_db_prep_save
    if isinstance(field, models.ForeignKey):
        return _adapter(field.target_field, connection)
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
        # One publish stamps the same datetime object into several columns: adapt it once.
        last: list[Any] = [None, None]

        def adapt_datetime(value: Any) -> Any:
            if value is not last[0]:
                last[0], last[1] = value, generic(value, connection)
            return last[1]

        return adapt_datetime
    return lambda value: generic(value, connection)


class _InsertStatement:
    """A multi-row INSERT for one model and column list on one connection, SQL cached by size."""

    def __init__(
        self, model: type[models.Model], columns: tuple[str, ...], connection: BaseDatabaseWrapper
    ) -> None:
        self.connection = connection
        self.fields = [
            cast("models.Field[Any, Any]", model._meta.get_field(name)) for name in columns
        ]
        self.adapters = [_adapter(field, connection) for field in self.fields]
        quote = connection.ops.quote_name
        self.prefix = (
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(str(field.column)) for field in self.fields)}) VALUES "
        )
        self.one_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        self.sql_by_size: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        sql = self.sql_by_size.get(rows)
        if sql is None:
            sql = self.sql_by_size[rows] = self.prefix + ", ".join([self.one_row] * rows)
        return sql

    def params(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        adapters = self.adapters
        return [adapt(value) for row in rows for adapt, value in zip(adapters, row, strict=True)]

    def batch_size(self, rows: Sequence[Sequence[Any]]) -> int:
        if len(rows) * len(self.fields) <= _SAFE_PARAMETERS:
            return len(rows)
        return max(1, self.connection.ops.bulk_batch_size(self.fields, rows) or len(rows))


_STATEMENTS_ATTR = "_domain_events_insert_statements"


def insert_statement(
    model: type[models.Model], columns: tuple[str, ...], connection: BaseDatabaseWrapper
) -> _InsertStatement:
    """The cached multi-row INSERT of ``columns`` into ``model``'s table on ``connection``."""
    # Cached on the connection object (one per thread and alias), so the cache goes with it.
    statements: dict[tuple[type[models.Model], tuple[str, ...]], _InsertStatement] | None
    statements = getattr(connection, _STATEMENTS_ATTR, None)
    if statements is None:
        statements = {}
        setattr(connection, _STATEMENTS_ATTR, statements)
    statement = statements.get((model, columns))
    if statement is None:
        statement = statements[model, columns] = _InsertStatement(model, columns, connection)
    return statement


def insert_rows(
    model: type[models.Model], columns: tuple[str, ...], rows: Sequence[Sequence[Any]], using: str
) -> None:
    """INSERT ``rows`` (value tuples in ``columns`` order) with multi-row statements.

    The publish path's fast lane: ``bulk_create`` costs several times the database round trip
    on small inserts (model instances, per-call SQL compilation); this keeps each field's
    value adaptation and caches the SQL text.
    """
    connection = connections[using]
    statement = insert_statement(model, columns, connection)
    size = statement.batch_size(rows)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            cursor.execute(statement.sql(len(batch)), statement.params(batch))
