"""The in-house event backend's API, at the import path its projects use. It lives in
``django_domain_events.compat.backend``; see the migration guide."""

from __future__ import annotations

from typing import Any

from django_domain_events.compat import backend as _compat

# Each name is re-exported explicitly (``X as X``), for type checkers too.
from django_domain_events.compat.backend import (
    CeleryEventBackend as CeleryEventBackend,
)
from django_domain_events.compat.backend import (
    EventBackend as EventBackend,
)
from django_domain_events.compat.backend import (
    EventBackendType as EventBackendType,
)
from django_domain_events.compat.backend import (
    EventHandler as EventHandler,
)
from django_domain_events.compat.backend import (
    EventPublisher as EventPublisher,
)
from django_domain_events.compat.backend import (
    EventSubscriber as EventSubscriber,
)
from django_domain_events.compat.backend import (
    MemoryEventBackend as MemoryEventBackend,
)
from django_domain_events.compat.backend import (
    _import_event_handlers as _import_event_handlers,
)
from django_domain_events.compat.backend import (
    get_event_backend as get_event_backend,
)
from django_domain_events.compat.backend import (
    init_domain_events as init_domain_events,
)
from django_domain_events.compat.backend import (
    init_event_backend as init_event_backend,
)
from django_domain_events.compat.backend import (
    logger as logger,
)
from django_domain_events.compat.backend import (
    pending_handlers as pending_handlers,
)
from django_domain_events.compat.backend import (
    publish_event as publish_event,
)
from django_domain_events.compat.backend import (
    register_event_handlers as register_event_handlers,
)
from django_domain_events.compat.backend import (
    reset_event_backend as reset_event_backend,
)
from django_domain_events.compat.backend import (
    subscribe_to_event as subscribe_to_event,
)
from django_domain_events.compat.backend import (
    subscription_name as subscription_name,
)

_STATE = ("_event_backend", "_pending_handlers", "_is_initialized")


def __getattr__(name: str) -> Any:
    # The seed module's state variables, read live: a re-export would be a copy taken at import.
    if name in _STATE:
        return getattr(_compat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
