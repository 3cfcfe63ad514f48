"""The envelope: what a receiver may know about the event and delivery it is handling."""

from __future__ import annotations

import contextvars
import datetime as dt
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Envelope:
    """Metadata of one event, and of the delivery being run when a receiver gets it.

    A receiver receives it by declaring a parameter named ``envelope``; code further down the
    call stack can read it with ``current_envelope()``.
    """

    event_id: uuid.UUID
    """Id of the event (its ``OutboxEvent`` row)."""
    event_type: str
    """The event's type, e.g. ``"shop.OrderPlaced"``."""
    version: int
    """Schema version the payload was written at."""
    occurred_at: dt.datetime
    """When the event was published."""
    correlation_id: str
    """Shared by every event that descends from the same first event."""
    causation_id: uuid.UUID | None = None
    """Id of the event whose receiver published this one, or None."""
    delivery_id: uuid.UUID | None = None
    """Id of the delivery being run (None outside a delivery)."""
    receiver: str | None = None
    """Name of the receiver being run (None outside a delivery)."""
    attempt: int = 0
    """Number of this attempt, 1 for the first."""
    ordering_key: str = ""
    """The event's ordering key, "" if it has none."""


_current: contextvars.ContextVar[Envelope | None] = contextvars.ContextVar(
    "django_domain_events_envelope", default=None
)


def current_envelope() -> Envelope | None:
    """The envelope of the delivery being run in this context, or None outside a receiver.

    Events published while it is set carry its correlation id, and its event id as causation.
    """
    return _current.get()


def set_current_envelope(envelope: Envelope | None) -> contextvars.Token[Envelope | None]:
    """Make ``envelope`` current; pass the returned token to ``reset_current_envelope``."""
    return _current.set(envelope)


def reset_current_envelope(token: contextvars.Token[Envelope | None]) -> None:
    """Restore the envelope that was current before ``set_current_envelope``."""
    _current.reset(token)
