"""Numbering a publish's ordered deliveries in their keys' lines (see ``delivery.ordering``).

Publishing an event with an ordering key to an event type that has an ordered receiver takes the
next number of the key's sequence (its ``OrderingKey`` row) and holds that row's lock until the
transaction ends, so for one key sequence order is commit order. A delivery with an unsettled
one of the same key and receiver ahead of it is written ``waiting`` (a scheduled one too: it
keeps its due time in ``next_attempt_at``, and is released as scheduled if that is still ahead).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_domain_events.declaration.registry import registry, skips_dead
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import DELIVERY_COLUMNS, Delivery, DeliveryState, OrderingKey
from django_domain_events.statements import line_statements

UNSETTLED = (
    DeliveryState.PENDING,
    DeliveryState.DISPATCHED,
    DeliveryState.FAILED,
    DeliveryState.WAITING,
    DeliveryState.SCHEDULED,
)
"""States of a delivery that keeps the ones behind it waiting, whatever its receiver says."""

_ID = DELIVERY_COLUMNS.index("id")
_EVENT = DELIVERY_COLUMNS.index("event")
_RECEIVER = DELIVERY_COLUMNS.index("receiver")
_DISPATCHER = DELIVERY_COLUMNS.index("dispatcher")
_STATE = DELIVERY_COLUMNS.index("state")
_DISPATCHED_AT = DELIVERY_COLUMNS.index("dispatched_at")
_KEY = DELIVERY_COLUMNS.index("ordering_key")
_TASK_ID = DELIVERY_COLUMNS.index("task_id")
_SEQ = DELIVERY_COLUMNS.index("ordering_seq")


def blocking_states(receiver_name: str) -> tuple[str, ...]:
    if skips_dead(registry.get(receiver_name)):
        return UNSETTLED
    return (*UNSETTLED, DeliveryState.DEAD)


def sequence(
    connection: BaseDatabaseWrapper,
    alias: str,
    deliveries: list[tuple[Any, ...]],
    owed: list[OwedDelivery],
) -> None:
    """Number the ordered ones of ``deliveries`` (value tuples in ``DELIVERY_COLUMNS`` order,
    in publish order) in their keys' sequences, and make those with an unsettled delivery of
    the same key and receiver ahead of them ``waiting``, dropping them from ``owed``.

    Called in the publishing transaction, before the rows are written; takes the keys' locks
    until it ends. Changes both lists in place.
    """
    events_by_key: dict[str, list[uuid.UUID]] = {}
    for row in deliveries:
        key = row[_KEY]
        if key:
            events = events_by_key.setdefault(key, [])
            if not events or events[-1] != row[_EVENT]:
                events.append(row[_EVENT])
    if not events_by_key:
        return
    last = _advance(connection, alias, {key: len(ids) for key, ids in events_by_key.items()})
    seq_of: dict[uuid.UUID, int] = {}
    used: set[str] = set()
    for key, ids in events_by_key.items():
        first = last[key] - len(ids) + 1
        for offset, event_id in enumerate(ids):
            seq_of[event_id] = first + offset
        if first > 1:
            used.add(key)
    # A sequence that starts now has no deliveries of its key behind anything: a key's row is
    # only ever deleted once none of its deliveries is left unsettled.
    busy = _busy_lines(alias, [row for row in deliveries if row[_KEY] in used]) if used else set()
    held: set[uuid.UUID] = set()
    for index, row in enumerate(deliveries):
        key = row[_KEY]
        if not key:
            continue
        values = list(row)
        values[_SEQ] = seq_of[row[_EVENT]]
        line = (row[_RECEIVER], key)
        if line in busy:
            values[_STATE] = DeliveryState.WAITING
            values[_DISPATCHED_AT] = None
            values[_TASK_ID] = ""
            held.add(row[_ID])
        else:
            busy.add(line)  # the ones behind it in this publish wait for it
        deliveries[index] = tuple(values)
    if held:
        owed[:] = [item for item in owed if item.delivery_id not in held]


def sequence_models(connection: BaseDatabaseWrapper, alias: str, rows: list[Delivery]) -> None:
    """``sequence()`` for unsaved ``Delivery`` instances (a replay's), changing them in place."""
    values = [
        tuple(getattr(row, "event_id" if name == "event" else name) for name in DELIVERY_COLUMNS)
        for row in rows
    ]
    sequence(connection, alias, values, [])
    for row, numbered in zip(rows, values, strict=True):
        row.state = numbered[_STATE]
        row.dispatched_at = numbered[_DISPATCHED_AT]
        row.task_id = numbered[_TASK_ID]
        row.ordering_seq = numbered[_SEQ]


def _advance(connection: BaseDatabaseWrapper, alias: str, counts: dict[str, int]) -> dict[str, int]:
    """Add ``counts`` to the keys' sequences, locking their rows; return each key's last
    number."""
    keys = sorted(counts)  # one order for every call: no deadlock between two publish_many()
    if connection.vendor in ("postgresql", "sqlite"):
        table = connection.ops.quote_name(OrderingKey._meta.db_table)
        values = ", ".join(["(%s, %s)"] * len(keys))
        sql = (
            f"INSERT INTO {table} (key, last_seq) VALUES {values} "
            f"ON CONFLICT (key) DO UPDATE SET last_seq = {table}.last_seq + excluded.last_seq "
            f"RETURNING key, last_seq"
        )
        params: list[Any] = [item for key in keys for item in (key, counts[key])]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {key: int(last_seq) for key, last_seq in cursor.fetchall()}
    found: dict[str, int] = {}
    rows = OrderingKey.objects.using(alias)
    for key in keys:
        row, _ = rows.select_for_update().get_or_create(key=key)
        row.last_seq += counts[key]
        row.save(update_fields=["last_seq"])
        found[key] = row.last_seq
    return found


def _busy_lines(alias: str, deliveries: Sequence[tuple[Any, ...]]) -> set[tuple[str, str]]:
    """The (receiver, key) pairs of ``deliveries`` that already have a delivery that keeps new
    ones waiting."""
    receivers = sorted({row[_RECEIVER] for row in deliveries if row[_KEY]})
    keys = sorted({row[_KEY] for row in deliveries if row[_KEY]})
    sql = line_statements(connections[alias])
    with sql.connection.cursor() as cursor:
        cursor.execute(sql.busy(len(keys), len(receivers)), [*keys, *receivers])
        found = cursor.fetchall()
    return {(receiver, key) for receiver, key, state in found if state in blocking_states(receiver)}
