"""Building the catalogue from the event classes and the receiver registry, as plain data."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from django_domain_events.catalogue.field_types import Field, fields_of
from django_domain_events.conf import settings
from django_domain_events.declaration.events import DomainEvent, event_classes
from django_domain_events.declaration.registry import (
    Receiver,
    Registry,
    is_ordered,
    pattern_matches,
    registry,
    time_limit_for,
)
from django_domain_events.declaration.retry import policy_for

CATALOGUE_FORMAT = 1
"""Version of the JSON catalogue's layout, stored in it as ``catalogue_format``."""

EventKind = Literal["domain", "integration", "named"]


@dataclass(frozen=True)
class ReceiverEntry:
    """One receiver of an event type, with what decides how its deliveries are made."""

    name: str
    namespace: str
    receives: str
    """The event type or wildcard pattern it was declared for."""
    dispatcher: str
    queue: str | None
    ordered: bool
    on_dead: str | None
    """For an ordered receiver, ``"block"`` or ``"skip"``; None for an unordered one."""
    max_attempts: int
    retry_base_delay: float
    retry_max_delay: float
    timeout: float | None
    once: bool
    is_async: bool
    delay: float | None = None
    """Seconds after publish its deliveries are due (``@receiver(delay=)``); None for at once."""
    shares_commit: bool = False
    """Whether the relay may settle several of its deliveries in one commit."""

    @classmethod
    def of(cls, receiver: Receiver) -> ReceiverEntry:
        """The entry of ``receiver``, its own options over the project's settings."""
        policy = policy_for(receiver)
        ordered = is_ordered(receiver)
        return cls(
            name=receiver.name,
            namespace=receiver.namespace,
            receives=receiver.event_type,
            dispatcher=receiver.dispatcher or settings.DISPATCHER,
            queue=receiver.queue,
            ordered=ordered,
            on_dead=(receiver.on_dead or settings.ORDERED_ON_DEAD) if ordered else None,
            max_attempts=policy.max_attempts,
            retry_base_delay=policy.base_delay,
            retry_max_delay=policy.max_delay,
            timeout=time_limit_for(receiver),
            once=receiver.once,
            is_async=receiver.is_async,
            delay=None if receiver.delay is None else receiver.delay.total_seconds(),
            shares_commit=receiver.shares_commit,
        )

    def as_dict(self) -> dict[str, Any]:
        """The receiver as JSON-ready data."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "receives": self.receives,
            "dispatcher": self.dispatcher,
            "queue": self.queue,
            "ordered": self.ordered,
            "on_dead": self.on_dead,
            "retry": {
                "max_attempts": self.max_attempts,
                "base_delay": self.retry_base_delay,
                "max_delay": self.retry_max_delay,
            },
            "timeout": self.timeout,
            "once": self.once,
            "async": self.is_async,
            "delay": self.delay,
            "shares_commit": self.shares_commit,
        }


@dataclass(frozen=True)
class EventEntry:
    """One event type: its declaration (for typed events) and its receivers."""

    event_type: str
    kind: EventKind
    """``"domain"`` or ``"integration"`` for a typed event, ``"named"`` for an event type
    known only from the receivers that name it."""
    version: int | None
    event_class: type[DomainEvent] | None
    description: str
    fields: tuple[Field, ...]
    nested_types: dict[str, dict[str, Any]]
    """The dataclasses and enums its fields name, by qualified name."""
    ordering_key: str | None
    publishers: tuple[str, ...]
    upcaster: bool
    """Whether its class defines ``upcast()``, to read payloads of older versions."""
    receivers: tuple[ReceiverEntry, ...]

    def as_dict(self) -> dict[str, Any]:
        """The event type as JSON-ready data."""
        cls = self.event_class
        return {
            "event_type": self.event_type,
            "kind": self.kind,
            "version": self.version,
            "class": None if cls is None else f"{cls.__module__}.{cls.__qualname__}",
            "description": self.description,
            "fields": [field.as_dict() for field in self.fields],
            "types": self.nested_types,
            "ordering_key": self.ordering_key,
            "publishers": list(self.publishers),
            "upcaster": self.upcaster,
            "receivers": [receiver.as_dict() for receiver in self.receivers],
        }


@dataclass(frozen=True)
class Catalogue:
    """Every event type, sorted, and the wildcard receivers."""

    events: tuple[EventEntry, ...]
    wildcard_receivers: tuple[ReceiverEntry, ...]

    def as_dict(self) -> dict[str, Any]:
        """The catalogue as JSON-ready data, the same for the same declarations: commit it and
        compare against it with ``events_catalogue --check``."""
        return {
            "catalogue_format": CATALOGUE_FORMAT,
            "events": [entry.as_dict() for entry in self.events],
            "wildcard_receivers": [entry.as_dict() for entry in self.wildcard_receivers],
        }

    def selected(self, pattern: str) -> Catalogue:
        """The event types ``pattern`` names (one event type, ``"billing.*"`` or ``"*"``), and
        the wildcard receivers of any of them."""
        events = tuple(entry for entry in self.events if pattern_matches(pattern, entry.event_type))
        wildcards = tuple(
            entry
            for entry in self.wildcard_receivers
            if any(pattern_matches(entry.receives, event.event_type) for event in events)
        )
        return Catalogue(events, wildcards)


def build_catalogue(
    classes: Iterable[type[DomainEvent]] | None = None, receivers: Registry | None = None
) -> Catalogue:
    """The catalogue of ``classes`` (default: every concrete event class) and of the event
    types the receivers of ``receivers`` (default: the registry) name."""
    receivers = registry if receivers is None else receivers
    by_type = {cls.event_type: cls for cls in (event_classes() if classes is None else classes)}
    declared = [receiver for receiver in _current(receivers) if not receiver.is_wildcard]
    named = {receiver.event_type for receiver in declared} - set(by_type)
    namespaces = sorted({receiver.namespace for receiver in _current(receivers)})
    entries = []
    for event_type in sorted({*by_type, *named}):
        found = [
            ReceiverEntry.of(receiver)
            for namespace in namespaces
            for receiver in receivers.receivers_for(event_type, namespace)
        ]
        found.sort(key=lambda entry: (entry.namespace, entry.name))
        cls = by_type.get(event_type)
        entries.append(_typed_entry(cls, found) if cls else _named_entry(event_type, found))
    wildcards = sorted(
        (ReceiverEntry.of(receiver) for receiver in _current(receivers) if receiver.is_wildcard),
        key=lambda entry: (entry.namespace, entry.name),
    )
    return Catalogue(tuple(entries), tuple(wildcards))


def _current(receivers: Registry) -> list[Receiver]:
    # A name claimed twice is a duplicate for the system checks; deliveries go to the last one.
    found = (receivers.get(receiver.name) for receiver in receivers.all())
    return list({receiver.name: receiver for receiver in found if receiver}.values())


def _typed_entry(cls: type[DomainEvent], receivers: list[ReceiverEntry]) -> EventEntry:
    nested: dict[str, dict[str, Any]] = {}
    fields = fields_of(cls, nested)
    return EventEntry(
        event_type=cls.event_type,
        kind=cls.event_kind,
        version=cls.version,
        event_class=cls,
        description=description_of(cls),
        fields=fields,
        nested_types=dict(sorted(nested.items())),
        ordering_key=_ordering_key(cls),
        publishers=tuple(sorted(cls.publishers)),
        upcaster=defines_upcast(cls),
        receivers=tuple(receivers),
    )


def _named_entry(event_type: str, receivers: list[ReceiverEntry]) -> EventEntry:
    return EventEntry(
        event_type=event_type,
        kind="named",
        version=None,
        event_class=None,
        description="",
        fields=(),
        nested_types={},
        ordering_key=None,
        publishers=(),
        upcaster=False,
        receivers=tuple(receivers),
    )


def description_of(cls: type) -> str:
    """The first paragraph of the class's docstring ("" for none, or the one that
    ``@dataclass`` makes up from the signature)."""
    doc = cls.__dict__.get("__doc__") or ""
    if doc.startswith(f"{cls.__name__}("):
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def defines_upcast(cls: type[DomainEvent]) -> bool:
    """Whether ``cls`` (or a base between it and ``DomainEvent``) overrides ``upcast()``."""
    return getattr(cls.upcast, "__func__", None) is not getattr(
        DomainEvent.upcast, "__func__", None
    )


def _ordering_key(cls: type[DomainEvent]) -> str | None:
    declared = cls.ordering_key
    if declared is None:
        return None
    if isinstance(declared, str):
        return declared
    return f"{getattr(declared, '__name__', 'ordering_key')}()"
