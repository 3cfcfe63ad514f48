"""Reading a stored delivery back: its event, envelope and trace headers from the outbox.

The one loader for every path that runs a delivery it did not publish itself: the synchronous
path after its claim, the Celery task, the relay (a batch at once) and tracing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.db import connections

from django_domain_events.declaration.codec import decode_event
from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.registry import registry
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.exceptions import (
    DomainEventsError,
    EventDecodeError,
    UnknownEventTypeError,
)
from django_domain_events.models import EVENT_COLUMNS, RUNNABLE_STATES, OutboxEvent
from django_domain_events.statements import delivery_load

StoredEvent = tuple[DomainEvent | NamedEvent, Envelope, dict[str, Any]]
"""An event read back from the outbox: the event, its envelope and its stored headers."""


def decode_stored(values: Sequence[Any]) -> StoredEvent:
    """The event, envelope and headers from the values of ``models.EVENT_COLUMNS``. Raises
    ``DomainEventsError`` if the payload cannot be decoded into its event, whatever the row
    holds. Headers that are not a JSON object (a changed row) are read as none."""
    event_id, event_type, version, payload, occurred_at, correlation, causation, key, headers = (
        values
    )
    envelope = Envelope(
        event_id=event_id,
        event_type=event_type,
        version=version,
        occurred_at=occurred_at,
        correlation_id=correlation,
        causation_id=causation,
        ordering_key=key,
    )
    try:
        event = decode_event(event_type, version, payload)
    except (RecursionError, ValueError, TypeError) as exc:
        if isinstance(exc, DomainEventsError):
            raise
        raise EventDecodeError(
            f"{event_type} (version {version}): the stored payload cannot be decoded: "
            f"{type(exc).__qualname__}: {exc}"
        ) from exc
    return event, envelope, headers if type(headers) is dict else {}


def receives(receiver: str, event_type: str) -> bool:
    """Whether the registered receiver ``receiver`` takes events of ``event_type`` (True for
    a receiver not registered at all: running it reports that)."""
    found = registry.get(receiver)
    return found is None or found.matches(event_type)


def not_received(receiver: str, event_type: str) -> UnknownEventTypeError:
    """The error recorded on a delivery whose receiver does not take its stored event's type."""
    return UnknownEventTypeError(
        f"Receiver {receiver!r} does not take {event_type!r} events, the type its stored "
        f"event names (the row was changed, or the receiver now takes another type). Replay "
        f"the event to the receivers of its type instead."
    )


@dataclass(frozen=True, slots=True)
class LoadedDelivery:
    """A delivery's row as stored, with its event decoded (``event`` is None, and ``error``
    says why, when its payload cannot be decoded)."""

    owed: OwedDelivery
    state: str
    error: DomainEventsError | None = None

    @property
    def runnable(self) -> bool:
        """Whether a receiver may still run it (pending, dispatched or failed)."""
        return self.state in RUNNABLE_STATES


def load_delivery(delivery_id: uuid.UUID, using: str) -> LoadedDelivery | None:
    """The delivery ``delivery_id`` of database ``using`` with its event, in one query; None if
    there is no such delivery."""
    values = delivery_load(connections[using]).fetch(delivery_id)
    if values is None:
        return None
    receiver, dispatcher, queue, state, attempts, key, *stored = values
    owed = OwedDelivery(
        delivery_id, receiver, dispatcher, queue, using, attempts=attempts, ordering_key=key
    )
    try:
        event, envelope, headers = decode_stored(stored)
    except DomainEventsError as exc:
        return LoadedDelivery(owed, str(state), error=exc)
    if not receives(receiver, envelope.event_type):
        return LoadedDelivery(owed, str(state), error=not_received(receiver, envelope.event_type))
    return LoadedDelivery(
        replace(owed, event=event, envelope=envelope, headers=headers), str(state)
    )


def load_events(using: str, event_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, StoredEvent]:
    """The events ``event_ids`` of database ``using``, in one query, by id. An event whose
    payload cannot be decoded is left out: running its delivery loads it again and records
    why it cannot be delivered."""
    loaded: dict[uuid.UUID, StoredEvent] = {}
    rows = OutboxEvent.objects.using(using).filter(pk__in=event_ids).order_by()
    for row in rows.values_list(*EVENT_COLUMNS):
        try:
            loaded[row[0]] = decode_stored(row)
        except DomainEventsError:
            continue
    return loaded


def load_headers(using: str, event_id: uuid.UUID) -> Mapping[str, Any]:
    """The stored headers (trace context) of the event ``event_id``; empty if it has none."""
    found = (
        OutboxEvent.objects.using(using)
        .filter(pk=event_id)
        .values_list("headers", flat=True)
        .first()
    )
    return found if isinstance(found, dict) else {}
