"""``collect_events()``: gather what a block publishes, then write it all at once at its end.

Inside the block, ``publish()`` and ``publish_many()`` do everything but write: each event is
validated and encoded, gets its id (which ``publish()`` returns), its correlation and causation,
and one delivery per receiver with the dispatcher it will use. The rows wait in the block. When
it ends they are written with one multi-row INSERT per table (per database alias), in the
transaction open at that moment, and dispatched when that transaction commits, exactly as if
they had been published there. With ``commit=False`` the block is a dry run: the would-be rows
are returned, receivers declared with ``dry_run=True`` are called with ``commit=False`` to
preview their effects, and nothing is written or dispatched. ``collect()`` lists the would-be
receiver runs (``SideEffect``) for inspection.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.db.transaction import Atomic

from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.registry import Receiver, registry
from django_domain_events.models import DELIVERY_COLUMNS, EVENT_COLUMNS
from django_domain_events.observability import debug_logging
from django_domain_events.publishing.batch import Batch, batch_for
from django_domain_events.publishing.publisher import _collector, _commit, _Rows

logger = logging.getLogger("django_domain_events")

_EVENT = {name: index for index, name in enumerate(EVENT_COLUMNS)}
_DELIVERY = {name: index for index, name in enumerate(DELIVERY_COLUMNS)}


@dataclass(frozen=True, slots=True)
class EventRow:
    """An ``OutboxEvent`` row that a ``collect_events()`` block wrote, or would write."""

    id: uuid.UUID
    event_type: str
    version: int
    payload: Any
    """The payload as stored: the JSON value the encoded event reads back as."""
    occurred_at: dt.datetime
    correlation_id: str
    causation_id: uuid.UUID | None
    event: DomainEvent | NamedEvent
    """The object that was published."""


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A ``Delivery`` row that a ``collect_events()`` block wrote, or would write."""

    id: uuid.UUID
    event_id: uuid.UUID
    receiver: str
    """The receiver's stable name."""
    dispatcher: str
    """The dispatcher resolved for it: ``use_dispatcher()``, the receiver's own, or the
    setting."""
    queue: str
    state: str


@dataclass(frozen=True, slots=True)
class SideEffect:
    """One receiver run that a ``collect_events()`` block causes, or would cause: its delivery,
    the event, and the registered receiver (None if no receiver has that name now)."""

    delivery: DeliveryRow
    event: DomainEvent | NamedEvent
    envelope: Envelope
    receiver: Receiver | None
    using: str
    """The database alias the rows are, or would be, written to."""

    @property
    def supports_dry_run(self) -> bool:
        """Whether the receiver was declared with ``dry_run=True``."""
        return self.receiver is not None and self.receiver.dry_run

    def preview(self) -> Any:
        """Call the receiver with the event and ``commit=False``, and return what it returns.

        It runs in a savepoint that is rolled back, so even a write it makes by mistake is
        undone. Raises ``TypeError`` for a receiver not declared with ``dry_run=True``.
        """
        found = self.receiver
        if found is None or not found.dry_run:
            name = self.delivery.receiver
            raise TypeError(
                f"Receiver {name!r} does not support a dry run: declare it with "
                f"@receiver(..., dry_run=True) and give it a keyword-only commit argument."
            )
        kwargs: dict[str, Any] = {"commit": False}
        if found.takes_envelope:
            kwargs["envelope"] = self.envelope
        with transaction.atomic(using=self.using):
            try:
                if found.is_async:
                    return async_to_sync(found.func)(self.event, **kwargs)
                return found.func(self.event, **kwargs)
            finally:
                transaction.set_rollback(True, using=self.using)


class CollectedEvents:
    """What a ``collect_events()`` block gathered, filled in when the block ends.

    ``events`` and ``deliveries`` hold the rows in publish order: written ones, or with
    ``commit=False`` the ones that would have been. Events published inside an ``atomic()``
    block that rolled back are not among them. Empty if the block raised.
    """

    def __init__(self, commit: bool) -> None:
        self.commit = commit
        """Whether the block writes its rows (False for a dry run)."""
        self.events: tuple[EventRow, ...] = ()
        self.deliveries: tuple[DeliveryRow, ...] = ()
        self.previews: tuple[tuple[SideEffect, Any], ...] = ()
        """In a dry run, each receiver declared with ``dry_run=True`` and what its call with
        ``commit=False`` returned, in publish order."""
        self._side_effects: tuple[SideEffect, ...] = ()

    def collect(self) -> list[SideEffect]:
        """The would-be receiver runs, one per delivery, in publish order, for inspection.

        A dry-run receiver's ``SideEffect.preview()`` calls it with ``commit=False`` again. To
        apply them for real, run the same code in a block with ``commit=True``: the outbox then
        runs the receivers, after the commit, with retries.
        """
        return list(self._side_effects)

    @property
    def ids(self) -> list[uuid.UUID]:
        """The ids of the events, in publish order."""
        return [row.id for row in self.events]

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        mode = "" if self.commit else " (dry run)"
        counts = f"{len(self.events)} events, {len(self.deliveries)} deliveries"
        return f"<CollectedEvents{mode}: {counts}>"


class _Block:
    """The state of one ``collect_events()`` block: the rows handed to it, each with the batch
    that was current where it was published (a batch Django dropped means a rollback)."""

    def __init__(self, commit: bool, parent: _Block | None) -> None:
        self.commit = commit
        self.parent = parent
        self.items: list[tuple[_Rows, Batch | None]] = []
        # Whether the rows will really be written: not inside a dry run.
        self.writes: bool = commit and (parent is None or parent.writes)
        # The outermost block of a writing chain writes the rows, so the transactions open
        # when it began must still be open when they are published.
        self.entry_blocks: dict[str, list[Atomic]] = {}
        if self.writes:
            if parent is not None:
                self.entry_blocks = parent.entry_blocks
            else:
                self.entry_blocks = {
                    alias: list(connections[alias].atomic_blocks) for alias in connections
                }

    def add(self, rows: _Rows) -> None:
        connection = connections[rows.alias]
        if not connection.in_atomic_block:
            self.items.append((rows, None))
            return
        if self.writes:
            self._check_transaction(rows.alias, list(connection.atomic_blocks))
        self.items.append((rows, batch_for(connection, rows.alias)))

    def _check_transaction(self, alias: str, blocks: list[Atomic]) -> None:
        entry = self.entry_blocks.get(alias, [])
        if not entry or blocks[0] is not entry[0]:
            raise RuntimeError(
                f"publish() inside collect_events() was called in a transaction on {alias!r} "
                f"that began inside the block: it would commit before the block writes the "
                f"event, and the event would not be part of it. Open the transaction around "
                f"the block instead: with transaction.atomic(), collect_events(): ..."
            )

    def live_items(self) -> list[tuple[_Rows, Batch | None]]:
        """The rows whose ``atomic()`` blocks have not rolled back, with their batches.

        A batch's hook is still registered while its transaction is open, has run if it
        committed (possible only in a dry run, see ``_check_transaction``), and is gone if it
        rolled back.
        """
        return [
            (rows, batch)
            for rows, batch in self.items
            if batch is None or batch.ran or batch.is_registered(connections[rows.alias])
        ]


def _event_rows(rows: list[_Rows]) -> tuple[EventRow, ...]:
    found = []
    for item in rows:
        for values, (event, _envelope) in zip(item.events, item.envelopes, strict=True):
            found.append(
                EventRow(
                    id=values[_EVENT["id"]],
                    event_type=values[_EVENT["event_type"]],
                    version=values[_EVENT["version"]],
                    payload=msgspec.json.decode(values[_EVENT["payload"]]),
                    occurred_at=values[_EVENT["occurred_at"]],
                    correlation_id=values[_EVENT["correlation_id"]],
                    causation_id=values[_EVENT["causation_id"]],
                    event=event,
                )
            )
    return tuple(found)


def _delivery_rows(rows: list[_Rows]) -> tuple[DeliveryRow, ...]:
    return tuple(
        DeliveryRow(
            id=values[_DELIVERY["id"]],
            event_id=values[_DELIVERY["event"]],
            receiver=values[_DELIVERY["receiver"]],
            dispatcher=values[_DELIVERY["dispatcher"]],
            queue=values[_DELIVERY["queue"]],
            state=str(values[_DELIVERY["state"]]),
        )
        for item in rows
        for values in item.deliveries
    )


def _side_effects(rows: list[_Rows]) -> tuple[SideEffect, ...]:
    found = []
    for item in rows:
        by_id = {envelope.event_id: (event, envelope) for event, envelope in item.envelopes}
        for delivery in _delivery_rows([item]):
            event, envelope = by_id[delivery.event_id]
            found.append(
                SideEffect(delivery, event, envelope, registry.get(delivery.receiver), item.alias)
            )
    return tuple(found)


def _write(rows: list[_Rows]) -> None:
    by_alias: dict[str, _Rows] = {}
    for item in rows:
        merged = by_alias.get(item.alias)
        if merged is None:
            merged = by_alias[item.alias] = _Rows(item.alias)
        merged.events.extend(item.events)
        merged.deliveries.extend(item.deliveries)
        merged.owed.extend(item.owed)
        merged.envelopes.extend(item.envelopes)
    started = time.perf_counter() if debug_logging.enabled() else None
    for alias, merged in by_alias.items():
        _commit(alias, merged.events, merged.deliveries, merged.owed, merged.envelopes, started)


@contextmanager
def collect_events(*, commit: bool = True) -> Iterator[CollectedEvents]:
    """Collect the events published inside the block and write them together when it ends.

    ::

        with transaction.atomic(), collect_events() as collected:
            for line in lines:
                publish(LinePicked(order_id=order.pk, sku=line.sku))
        # one INSERT for the events, one for their deliveries

    The rows are written in the transaction open when the block ends, so open the
    transaction around the block: a ``publish()`` in a transaction that began inside the block
    raises ``RuntimeError``. Events published in an ``atomic()`` block that rolled back are
    left out, and an exception out of the block discards everything it collected. A committing
    block inside another one hands its rows to the outer block, which writes them, or not if it
    is a dry run.

    With ``commit=False`` it is a dry run: everything is validated, encoded and resolved as
    usual, ``publish()`` returns the would-be ids, and the ``CollectedEvents`` lists the
    would-be rows; nothing is written or dispatched, and ``capture_events()`` sees nothing.
    When it ends, each receiver declared with ``dry_run=True`` is called with the event and
    ``commit=False`` (``CollectedEvents.previews`` keeps what it returned).
    """
    parent = _collector.get()
    block = _Block(commit, parent if isinstance(parent, _Block) else None)
    collected = CollectedEvents(commit)
    token = _collector.set(block)
    try:
        yield collected
    finally:
        _collector.reset(token)
    # Only reached when the block did not raise: an exception discards the rows.
    items = block.live_items()
    live = [rows for rows, _batch in items]
    started = time.perf_counter()
    if commit and block.parent is not None:
        # The outer block decides. Each row keeps its batch, so that a savepoint rolling back
        # later still takes it along.
        block.parent.items.extend(items)
    elif commit and live:
        _write(live)
    collected.events = _event_rows(live)
    collected.deliveries = _delivery_rows(live)
    collected._side_effects = _side_effects(live)
    if not commit:
        collected.previews = tuple(
            (effect, effect.preview())
            for effect in collected._side_effects
            if effect.supports_dry_run
        )
    if debug_logging.enabled():
        debug_logging.logger.debug(
            "collect_events(commit=%s) ended: %d events, %d deliveries %s in %.3f ms",
            commit,
            len(collected.events),
            len(collected.deliveries),
            "written" if commit else "not written (dry run)",
            (time.perf_counter() - started) * 1000,
        )
