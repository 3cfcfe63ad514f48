"""Event classes: ``DomainEvent`` for typed events, ``NamedEvent`` for plain named ones, and
``IntegrationEvent`` for typed events that other systems consume through a transport."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from django.apps import apps

from django_domain_events.declaration.identifiers import (
    MAX_IDENTIFIER_LENGTH,
    check_identifier,
    identifier_problem,
)
from django_domain_events.exceptions import EventDecodeError, EventDefinitionError, PayloadError

# Bumped whenever an event class is defined, so cached lookups know to rebuild.
_generation = 0


class DomainEvent:
    """Base class of typed events. Subclass it as a frozen dataclass::

        @dataclass(frozen=True)
        class OrderPlaced(DomainEvent):
            order_id: int
            total: Decimal

    ``event_type`` defaults to ``"<app_label>.<ClassName>"`` and ``version`` to 1; set either as a
    class attribute to override. ``ordering_key`` names the field (or is a method) giving the
    key whose events ordered receivers get in publish order. ``data_subject`` names the field
    holding the id of the person its sensitive fields are about (see ``Sensitive``). Pass
    ``abstract=True`` in the class statement for a base class that is never published itself.
    ``event_kind`` says who consumes the event: ``"domain"`` (this application, the default)
    or ``"integration"`` (see ``IntegrationEvent``).
    """

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    event_kind: ClassVar[Literal["domain", "integration"]] = "domain"
    ordering_key: ClassVar[Any] = None
    """The event's ordering key, for ordered receivers: the name of the field that holds it
    (``ordering_key = "order_id"``), or a callable, such as a method, returning it."""
    data_subject: ClassVar[str | None] = None
    """The field (dotted into nested ones: ``"customer.id"``) holding the id of the person the
    event's sensitive fields are about, which ``erase_sensitive --subject`` finds; None: its
    events are not erased."""
    retention: ClassVar[Mapping[str, dt.timedelta | None] | None] = None
    """How long its settled deliveries are kept, by state, such as ``{"delivered":
    timedelta(days=7), "dead": None}`` (None: for ever); states it leaves out, and classes
    that set none, follow ``DOMAIN_EVENTS["RETENTION"]``. See ``prune_events``."""
    publishers: ClassVar[tuple[str, ...]] = ()
    """Where it is published from, such as ``("shop.services",)``: a declaration for the event
    catalogue (``manage.py events_catalogue``) to show, not checked against the code."""
    _abstract: ClassVar[bool] = True

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._abstract = abstract
        if "__repr__" not in cls.__dict__:
            # Set before @dataclass runs, which then keeps it: the dataclass repr would show
            # sensitive fields in tracebacks and logs.
            cls.__repr__ = _redacted_repr  # type: ignore[method-assign]
        if "event_type" not in cls.__dict__:
            cls.event_type = _default_event_type(cls)
        if not isinstance(cls.event_type, str) or not cls.event_type:
            raise EventDefinitionError(
                f"{cls.__qualname__}.event_type must be a non-empty string, got {cls.event_type!r}."
            )
        problem = identifier_problem(cls.event_type)
        if problem is not None:
            raise EventDefinitionError(f"{cls.__qualname__}.event_type {problem}.")
        if "*" in cls.event_type:
            raise EventDefinitionError(
                f"{cls.__qualname__}.event_type {cls.event_type!r}: '*' is kept for wildcard "
                f"receivers (@receiver('billing.*')); choose an event type without it."
            )
        if isinstance(cls.version, bool) or not isinstance(cls.version, int) or cls.version < 1:
            raise EventDefinitionError(
                f"{cls.__qualname__}.version must be an integer >= 1, got {cls.version!r}."
            )
        publishers = cls.publishers
        if not isinstance(publishers, tuple) or not all(
            isinstance(where, str) and where for where in publishers
        ):
            raise EventDefinitionError(
                f"{cls.__qualname__}.publishers must be a tuple of non-empty strings (module "
                f"paths such as 'shop.services'), got {publishers!r}."
            )
        if cls.event_kind not in ("domain", "integration"):
            raise EventDefinitionError(
                f"{cls.__qualname__}.event_kind must be 'domain' or 'integration', got "
                f"{cls.event_kind!r}. Subclass IntegrationEvent for an integration event."
            )
        global _generation
        _generation += 1

    @classmethod
    def upcast(cls, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Upgrade a payload stored at ``from_version`` to the shape of the current ``version``.

        Override it when you bump ``version``; the default refuses, so an old row never reaches a
        receiver half-understood.
        """
        raise EventDecodeError(
            f"{cls.__qualname__} is version {cls.version} but a stored payload is version "
            f"{from_version}, and {cls.__qualname__} defines no upcast(). Add a classmethod "
            f"upcast(payload, from_version) that returns the payload in the current shape."
        )


def _redacted_repr(self: object) -> str:
    from django_domain_events.declaration.sensitivity import redacted_repr

    return redacted_repr(self)


class IntegrationEvent(DomainEvent, abstract=True):
    """Base class of integration events: typed events that are a contract with other processes
    or services, rather than this application's own business.

    Subclass it like ``DomainEvent``. Its receivers always get the event decoded from its
    stored JSON, never the object that was published, and their deliveries must go through a
    transport dispatcher: a receiver that would run on ``"sync"`` is reported at start-up by
    system check ``django_domain_events.E012``.
    """

    # Set here because this base is defined while Django starts, before the app registry that
    # the default needs; subclasses get their own default as usual.
    event_type = "django_domain_events.IntegrationEvent"
    event_kind = "integration"
    destination: ClassVar[str | None] = None
    """The broker destination (exchange, topic) its events are sent to, or None: routed only
    by ``DOMAIN_EVENTS["ROUTES"]``, if at all. See docs/talking-to-services.md."""
    routing_key: ClassVar[str | None] = None
    """The routing key its events are sent with to ``destination`` (None: its ``event_type``)."""
    destination_transport: ClassVar[str] = "default"
    """The ``DOMAIN_EVENTS["TRANSPORTS"]`` alias of the broker ``destination`` is on."""

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(abstract=abstract, **kwargs)
        if not abstract and apps.ready:
            # A class defined once Django has started (in a test, say) gets its routes now;
            # the others get them when the app is ready.
            from django_domain_events.integration.routes import install_routes

            install_routes()


def _default_event_type(cls: type) -> str:
    if not apps.apps_ready:
        raise EventDefinitionError(
            f"{cls.__module__}.{cls.__qualname__} was defined before Django's app registry was "
            f"ready, so its default event_type ('<app_label>.<ClassName>') cannot be worked out. "
            f"Set event_type explicitly on the class, or import its module later (not from "
            f"settings or the top of apps.py)."
        )
    app_config = apps.get_containing_app_config(cls.__module__)
    if app_config is None:
        return f"{cls.__module__}.{cls.__qualname__}"
    return f"{app_config.label}.{cls.__qualname__}"


@dataclass(frozen=True)
class NamedEvent:
    """A plain named event: an ``event_type`` string and a JSON-ready ``payload`` dict.

    ``publish("billing.invoice_paid", {"invoice_id": 7})`` stores one; receivers of
    ``"billing.invoice_paid"`` get one back.
    """

    event_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    ordering_key: str = ""
    """Events with one key reach ordered receivers in publish order ("" for none)."""

    def __repr__(self) -> str:
        # Its payload's sensitive values (see declare_sensitive) are shown redacted.
        from django_domain_events.declaration.sensitivity import redacted_repr

        return redacted_repr(self)


def retire_event_class(cls: type[DomainEvent]) -> None:
    """Take ``cls`` out of event-type lookups and system checks, as if it were abstract.

    For classes defined inside tests, which linger until garbage-collected.
    """
    global _generation
    cls._abstract = True
    _generation += 1


def all_event_subclasses() -> set[type[DomainEvent]]:
    """Every ``DomainEvent`` subclass still alive, abstract or not."""
    found: set[type[DomainEvent]] = set()
    pending: list[type[DomainEvent]] = [DomainEvent]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in found:
                found.add(subclass)
                pending.append(subclass)
    return found


def event_classes() -> Iterator[type[DomainEvent]]:
    """Every concrete (non-abstract) ``DomainEvent`` subclass that currently exists."""
    for cls in all_event_subclasses():
        if not cls._abstract:
            yield cls


_by_type: dict[str, type[DomainEvent]] = {}
_by_type_generation = -1


def event_class_for(event_type: str) -> type[DomainEvent] | None:
    """The event class that declares ``event_type``, or None for a plain named event."""
    global _by_type, _by_type_generation
    if _by_type_generation != _generation:
        _by_type = {cls.event_type: cls for cls in event_classes()}
        _by_type_generation = _generation
    return _by_type.get(event_type)


MAX_KEY_LENGTH = MAX_IDENTIFIER_LENGTH
"""Longest ordering key, in characters (the column's length)."""


def key_of(event: DomainEvent | NamedEvent) -> str:
    """The ordering key ``event`` declares ("" for none).

    A ``DomainEvent`` class declares it with a class attribute ``ordering_key``: the name of
    one of its fields, or a callable (a method, say) taking the event. A ``NamedEvent`` carries
    it as its ``ordering_key`` field.
    """
    if isinstance(event, NamedEvent):
        return check_key(event.ordering_key, event.event_type)
    declared = type(event).ordering_key
    if declared is None:
        return ""
    if isinstance(declared, property):
        value = event.ordering_key
    elif isinstance(declared, str):
        try:
            value = getattr(event, declared)
        except AttributeError:
            raise PayloadError(
                f"{type(event).__qualname__}.ordering_key = {declared!r} names no field of "
                f"the event. Name one of its fields, or make ordering_key a method that "
                f"returns the key."
            ) from None
    else:
        value = declared(event)
    return check_key(value, event.event_type)


def check_key(value: Any, event_type: str) -> str:
    """``value`` as an ordering key: a string (an int is turned into one), "" for None."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, uuid.UUID):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(
            f"The ordering key of a {event_type!r} event is {type(value).__qualname__} "
            f"{value!r:.60}; it must be a string (or an int or UUID, turned into one)."
        )
    return check_identifier(value, f"The ordering key (ordering_key) of a {event_type!r} event")
