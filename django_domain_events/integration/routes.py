"""Routes: which integration events go to which broker destination, and the receiver each
route gets.

A route comes from an ``IntegrationEvent`` class's ``destination`` or from
``DOMAIN_EVENTS["ROUTES"]``. Each becomes a built-in receiver named
``"broker:<transport>:<destination>:<event_type>"``, so its event's delivery to the broker is
written in the publishing transaction and retried, relayed, dead-lettered and shown in the
admin like any receiver's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from django.apps import apps
from django.conf import settings as django_settings
from django.core.signals import setting_changed

from django_domain_events.conf import settings
from django_domain_events.declaration.events import IntegrationEvent, event_classes
from django_domain_events.declaration.registry import Receiver, pattern_matches, registry
from django_domain_events.integration.messages import Mode

RECEIVER_PREFIX = "broker:"
"""How the names of route receivers begin."""

DEFAULT_TRANSPORT = "default"
DEFAULT_DISPATCHER = "deferred"
"""The dispatcher of a route that names none: the relay sends, so a broker that is down never
slows a request."""

ROUTE_KEYS = frozenset(
    (
        "TRANSPORT",
        "DESTINATION",
        "ROUTING_KEY",
        "MODE",
        "DISPATCHER",
        "QUEUE",
        "MAX_ATTEMPTS",
        "ORDERED",
    )
)
"""The keys a ``DOMAIN_EVENTS["ROUTES"]`` entry may have."""

MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class Route:
    """One integration event type's way to one broker destination."""

    event_type: str
    transport: str
    destination: str
    routing_key: str
    mode: Mode = "structured"
    dispatcher: str = DEFAULT_DISPATCHER
    queue: str = ""
    max_attempts: int | None = None
    ordered: bool | None = None
    """Whether one ordering key's events are sent one at a time in publish order (None: when
    the event class declares an ``ordering_key``)."""

    @property
    def receiver_name(self) -> str:
        """The name of its receiver, the one its deliveries carry."""
        return f"{RECEIVER_PREFIX}{self.transport}:{self.destination}:{self.event_type}"


@dataclass(frozen=True)
class RouteEntry:
    """One entry of ``DOMAIN_EVENTS["ROUTES"]``: the event type (or ``"prefix.*"``) it is
    under and its options as given."""

    pattern: str
    options: Any
    """Its options as given: a dict when usable (see ``entry_problem()``)."""


def configured_entries() -> Iterator[RouteEntry]:
    """The entries of ``DOMAIN_EVENTS["ROUTES"]``: a value is one dict or a list of them."""
    for pattern, value in settings.ROUTES.items():
        for options in value if isinstance(value, list | tuple) else [value]:
            yield RouteEntry(str(pattern), options)


def entry_problem(entry: RouteEntry) -> str | None:
    """What makes a ``ROUTES`` entry unusable, or None (check E100 reports it)."""
    options = entry.options
    if not isinstance(options, Mapping):
        return f"is {options!r:.60}, not a dict such as {{'DESTINATION': 'orders'}}"
    unknown = sorted(str(key) for key in options if key not in ROUTE_KEYS)
    if unknown:
        return f"has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(ROUTE_KEYS))})"
    for key in ("DESTINATION", "TRANSPORT", "ROUTING_KEY", "DISPATCHER", "QUEUE"):
        value = options.get(key)
        required = key == "DESTINATION"
        if (value is not None or required) and (not isinstance(value, str) or not value):
            return f"has {key} {value!r:.60}; give a non-empty string"
    if options.get("MODE", "structured") not in MODES:
        return f"has MODE {options.get('MODE')!r:.40}; give 'structured' or 'binary'"
    attempts = options.get("MAX_ATTEMPTS")
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1
    ):
        return f"has MAX_ATTEMPTS {attempts!r:.40}; give an integer >= 1"
    if options.get("ORDERED") not in (None, True, False):
        return f"has ORDERED {options.get('ORDERED')!r:.40}; give True or False"
    return None


def _route(event_type: str, options: Mapping[str, Any]) -> Route:
    return Route(
        event_type=event_type,
        transport=options.get("TRANSPORT") or DEFAULT_TRANSPORT,
        destination=options["DESTINATION"],
        routing_key=options.get("ROUTING_KEY") or event_type,
        mode=options.get("MODE") or "structured",
        dispatcher=options.get("DISPATCHER") or DEFAULT_DISPATCHER,
        queue=options.get("QUEUE") or "",
        max_attempts=options.get("MAX_ATTEMPTS"),
        ordered=options.get("ORDERED"),
    )


def integration_classes() -> list[type[IntegrationEvent]]:
    """Every concrete integration event class, by event type."""
    found = [cls for cls in event_classes() if issubclass(cls, IntegrationEvent)]
    return sorted(found, key=lambda cls: cls.event_type)


def routes_of(cls: type[IntegrationEvent]) -> list[Route]:
    """The routes of ``cls``: its own ``destination``, then every usable ``ROUTES`` entry
    that names its event type or a prefix of it; one per receiver name."""
    found: dict[str, Route] = {}
    if isinstance(cls.destination, str) and cls.destination:
        route = Route(
            event_type=cls.event_type,
            transport=cls.destination_transport,
            destination=cls.destination,
            routing_key=cls.routing_key or cls.event_type,
        )
        found[route.receiver_name] = route
    for entry in configured_entries():
        if pattern_matches(entry.pattern, cls.event_type) and entry_problem(entry) is None:
            route = _route(cls.event_type, entry.options)
            found.setdefault(route.receiver_name, route)
    return list(found.values())


def all_routes() -> list[tuple[type[IntegrationEvent], Route]]:
    """Every route of every integration event class, with its class."""
    return [(cls, route) for cls in integration_classes() for route in routes_of(cls)]


def route_receiver(cls: type[IntegrationEvent], route: Route) -> Receiver:
    """The built-in receiver that sends ``cls``'s events along ``route``."""
    from django_domain_events.declaration.receivers import make_receiver
    from django_domain_events.integration.sending import send_event

    def send_to_broker(event: IntegrationEvent, envelope: Any) -> None:
        send_event(route, event, envelope)

    send_to_broker.route = route  # type: ignore[attr-defined]
    send_to_broker.__qualname__ = f"send_to_broker[{route.receiver_name}]"
    send_to_broker.__doc__ = f"Send {cls.event_type} events to {route.destination!r}."
    ordered = route.ordered if route.ordered is not None else cls.ordering_key is not None
    return make_receiver(
        cls,
        send_to_broker,
        dispatcher=route.dispatcher,
        queue=route.queue or None,
        max_attempts=route.max_attempts,
        name=route.receiver_name,
        ordered=ordered,
        # Sending to a broker is what a transport dispatcher would do: "sync" is a choice.
        allow_sync=True,
        # A message sent again is harmless (consumers keep an inbox by its id), so the relay
        # may settle a group of sends in one commit.
        shares_commit=True,
    )


def install_routes() -> None:
    """Make the registry's route receivers those of the current routes: called when the app
    is ready, when ``DOMAIN_EVENTS`` changes and when an integration event class is defined."""
    from django_domain_events.declaration.receivers import register

    if not isinstance(getattr(django_settings, "DOMAIN_EVENTS", None) or {}, dict):
        return  # reported by check E002; nothing can be routed meanwhile
    wanted = all_routes()
    names = {route.receiver_name for _cls, route in wanted}
    for existing in list(registry.all()):
        if existing.name.startswith(RECEIVER_PREFIX) and existing.name not in names:
            registry.unregister(existing.name)
    for cls, route in wanted:
        current = registry.get(route.receiver_name)
        if current is None or current.target is not cls or route_of(current) != route:
            registry.unregister(route.receiver_name)
            register(route_receiver(cls, route))


def route_of(receiver: Receiver) -> Route | None:
    """The route a route receiver sends along, or None for any other receiver."""
    route = getattr(receiver.func, "route", None)
    return route if isinstance(route, Route) else None


def _reinstall_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "DOMAIN_EVENTS" and apps.ready:
        install_routes()


setting_changed.connect(_reinstall_on_setting_change, dispatch_uid="django_domain_events.routes")
