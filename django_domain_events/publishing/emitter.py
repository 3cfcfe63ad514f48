"""``Emitter``: publish to the receivers of one namespace, with a debug switch of its own."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from django_domain_events.conf import settings
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.namespaces import Namespace, debug_switch
from django_domain_events.declaration.registry import DEFAULT_NAMESPACE
from django_domain_events.publishing.publisher import _prepare, _write, due_of


@dataclass(frozen=True)
class Emitter:
    """Publishes like ``publish()``, to the receivers of ``namespace`` only (None: the
    ``"default"`` namespace of ``@receiver``).

    ``debug`` switches the debug log of its publishes on or off; None leaves it to the
    namespace's ``debug``, then to ``DOMAIN_EVENTS["DEBUG"]``. Code that takes an ``Emitter``
    as an argument can be handed one bound to another namespace at runtime.
    """

    namespace: Namespace | None = None
    debug: bool | None = None

    def __post_init__(self) -> None:
        if self.namespace is not None and not isinstance(self.namespace, Namespace):
            raise TypeError(
                f"Emitter(namespace={self.namespace!r}): give a Namespace, e.g. "
                f"Emitter(Namespace('users')), or None for the default namespace."
            )
        if self.debug is not None and not isinstance(self.debug, bool):
            raise ValueError(f"Emitter(debug={self.debug!r}): give True, False or None.")

    @property
    def namespace_name(self) -> str:
        """The name of the namespace it publishes to."""
        return DEFAULT_NAMESPACE if self.namespace is None else self.namespace.name

    def _debug(self) -> bool | None:
        if self.debug is not None:
            return self.debug
        return debug_switch(self.namespace_name)

    def publish(
        self,
        event: DomainEvent | NamedEvent | str,
        payload: Mapping[str, Any] | None = None,
        *,
        using: str | None = None,
        correlation_id: str | None = None,
        ordering_key: str | None = None,
        deliver_at: dt.datetime | None = None,
        delay: dt.timedelta | None = None,
    ) -> uuid.UUID:
        """``publish()`` to this emitter's namespace: the same arguments and transaction."""
        prepared = _prepare(event, payload, settings.MAX_PAYLOAD_BYTES, ordering_key)
        due = due_of(deliver_at, delay)
        namespace = self.namespace_name
        return _write([prepared], using, correlation_id, namespace, self._debug(), due)[0]

    def publish_many(
        self,
        events: Iterable[DomainEvent | NamedEvent],
        *,
        using: str | None = None,
        correlation_id: str | None = None,
        deliver_at: dt.datetime | None = None,
        delay: dt.timedelta | None = None,
    ) -> list[uuid.UUID]:
        """``publish_many()`` to this emitter's namespace."""
        max_bytes = settings.MAX_PAYLOAD_BYTES
        prepared = [_prepare(event, None, max_bytes) for event in events]
        due = due_of(deliver_at, delay, "publish_many()")
        if not prepared:
            return []
        return _write(prepared, using, correlation_id, self.namespace_name, self._debug(), due)

    async def apublish(
        self,
        event: DomainEvent | NamedEvent | str,
        payload: Mapping[str, Any] | None = None,
        *,
        using: str | None = None,
        correlation_id: str | None = None,
        ordering_key: str | None = None,
        deliver_at: dt.datetime | None = None,
        delay: dt.timedelta | None = None,
    ) -> uuid.UUID:
        """``apublish()`` to this emitter's namespace."""
        return await sync_to_async(self.publish)(
            event,
            payload,
            using=using,
            correlation_id=correlation_id,
            ordering_key=ordering_key,
            deliver_at=deliver_at,
            delay=delay,
        )
