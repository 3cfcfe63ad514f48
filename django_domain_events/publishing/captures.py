"""The callbacks of the active ``testing.capture_events()`` blocks: ``publish()`` calls each
with every event it writes, once the rows are written."""

from __future__ import annotations

from collections.abc import Callable

from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent

captures: list[Callable[[DomainEvent | NamedEvent, Envelope], None]] = []
