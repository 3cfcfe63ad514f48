"""Durable, transactional domain events for Django.

Declare events as dataclasses subclassing ``DomainEvent``, decorate receivers with
``@receiver``, and call ``publish()`` inside your transaction.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from django_domain_events.declaration.envelope import Envelope, current_envelope
from django_domain_events.declaration.events import DomainEvent, IntegrationEvent, NamedEvent
from django_domain_events.declaration.namespaces import Namespace
from django_domain_events.declaration.receivers import handles, receiver, receiver_class
from django_domain_events.declaration.registry import Receiver
from django_domain_events.declaration.sensitivity import Sensitive, declare_sensitive
from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery
from django_domain_events.dispatchers.override import use_dispatcher
from django_domain_events.exceptions import (
    DispatcherError,
    DomainEventsError,
    EventDecodeError,
    EventDefinitionError,
    GiveUp,
    MessageFormatError,
    NotYet,
    PayloadError,
    PublishedOutsideAtomic,
    PublishOutsideAtomicError,
    ReceiverLimitError,
    ReceiverTimedOut,
    RetryAfter,
    ScheduleError,
    TransportError,
    UnknownEventTypeError,
)
from django_domain_events.integration.consumers import consumer
from django_domain_events.publishing.aggregates import EventRecordingMixin
from django_domain_events.publishing.listeners import Listener, on, once
from django_domain_events.publishing.units_of_work import EventRecorder, UnitOfWork

if TYPE_CHECKING:
    from django_domain_events.publishing.collecting import collect_events
    from django_domain_events.publishing.emitter import Emitter
    from django_domain_events.publishing.publisher import apublish, publish, publish_many

__version__ = "0.1.0"

__all__ = [
    "Dispatcher",
    "DispatcherError",
    "DomainEvent",
    "DomainEventsError",
    "Emitter",
    "Envelope",
    "EventDecodeError",
    "EventDefinitionError",
    "EventRecorder",
    "EventRecordingMixin",
    "GiveUp",
    "IntegrationEvent",
    "Listener",
    "MessageFormatError",
    "NamedEvent",
    "Namespace",
    "NotYet",
    "OwedDelivery",
    "PayloadError",
    "PublishOutsideAtomicError",
    "PublishedOutsideAtomic",
    "Receiver",
    "ReceiverLimitError",
    "ReceiverTimedOut",
    "RetryAfter",
    "ScheduleError",
    "Sensitive",
    "TransportError",
    "UnitOfWork",
    "UnknownEventTypeError",
    "apublish",
    "collect_events",
    "consumer",
    "current_envelope",
    "declare_sensitive",
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
    "publish": "publishing.publisher",
    "publish_many": "publishing.publisher",
    "apublish": "publishing.publisher",
    "collect_events": "publishing.collecting",
    "Emitter": "publishing.emitter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
