"""The in-house event backend's API, at the import path its projects use. It lives in
``django_domain_events.compat.backend``; see the migration guide."""

from __future__ import annotations

from django_domain_events.compat.backend import (
    CeleryEventBackend,
    EventBackend,
    EventBackendType,
    EventHandler,
    EventPublisher,
    EventSubscriber,
    MemoryEventBackend,
    get_event_backend,
    init_domain_events,
    init_event_backend,
    pending_handlers,
    publish_event,
    register_event_handlers,
    reset_event_backend,
    subscribe_to_event,
    subscription_name,
)

__all__ = [
    "CeleryEventBackend",
    "EventBackend",
    "EventBackendType",
    "EventHandler",
    "EventPublisher",
    "EventSubscriber",
    "MemoryEventBackend",
    "get_event_backend",
    "init_domain_events",
    "init_event_backend",
    "pending_handlers",
    "publish_event",
    "register_event_handlers",
    "reset_event_backend",
    "subscribe_to_event",
    "subscription_name",
]
