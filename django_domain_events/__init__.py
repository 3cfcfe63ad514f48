"""Durable, transactional domain events for Django.

Declare events as dataclasses subclassing ``DomainEvent``, decorate receivers with
``@receiver``, and call ``publish()`` inside your transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .dispatchers.base import Dispatcher, OwedDelivery
from .envelope import Envelope, current_envelope
from .events import DomainEvent, NamedEvent
from .exceptions import (
    DispatcherError,
    DomainEventsError,
    EventDecodeError,
    EventDefinitionError,
    GiveUp,
    PayloadError,
    RetryAfter,
    UnknownEventTypeError,
)
from .receivers import Receiver, receiver

if TYPE_CHECKING:
    from .publishing import apublish, publish, publish_many

__version__ = "0.1.0"

__all__ = [
    "Dispatcher",
    "DispatcherError",
    "DomainEvent",
    "DomainEventsError",
    "Envelope",
    "EventDecodeError",
    "EventDefinitionError",
    "GiveUp",
    "NamedEvent",
    "OwedDelivery",
    "PayloadError",
    "Receiver",
    "RetryAfter",
    "UnknownEventTypeError",
    "apublish",
    "current_envelope",
    "publish",
    "publish_many",
    "receiver",
]

_PUBLISHING = frozenset({"publish", "publish_many", "apublish"})


def __getattr__(name: str) -> Any:
    # publishing imports the models, which cannot load while Django imports this package as an
    # installed app; so the publishing functions are imported on first use.
    if name in _PUBLISHING:
        from . import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
