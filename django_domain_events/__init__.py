"""Durable, transactional domain events for Django.

Declare events as dataclasses subclassing ``DomainEvent``, decorate receivers with
``@receiver``, and call ``publish()`` inside your transaction.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .aggregates import EventRecordingMixin
from .dispatchers.base import Dispatcher, OwedDelivery
from .dispatchers.override import use_dispatcher
from .envelope import Envelope, current_envelope
from .events import DomainEvent, IntegrationEvent, NamedEvent
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
from .listeners import Listener, on, once
from .receivers import Receiver, handles, receiver, receiver_class

if TYPE_CHECKING:
    from .collecting import collect_events
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
    "EventRecordingMixin",
    "GiveUp",
    "IntegrationEvent",
    "Listener",
    "NamedEvent",
    "OwedDelivery",
    "PayloadError",
    "Receiver",
    "RetryAfter",
    "UnknownEventTypeError",
    "apublish",
    "collect_events",
    "current_envelope",
    "handles",
    "on",
    "once",
    "publish",
    "publish_many",
    "receiver",
    "receiver_class",
    "use_dispatcher",
]

# These modules import the models, which cannot load while Django imports this package as an
# installed app; so their functions are imported on first use.
_LAZY = {
    "publish": "publishing",
    "publish_many": "publishing",
    "apublish": "publishing",
    "collect_events": "collecting",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
