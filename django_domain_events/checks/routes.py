"""System checks of integration event routes and the transports they name (E100-E109),
and of the brokers behind the transports at deployment (W105)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_domain_events.conf import settings
from django_domain_events.declaration.events import event_class_for
from django_domain_events.declaration.registry import is_wildcard, pattern_matches
from django_domain_events.exceptions import TransportConfigurationError, TransportError
from django_domain_events.integration.routes import (
    all_routes,
    configured_entries,
    entry_problem,
    integration_classes,
)
from django_domain_events.transports import RABBITMQ, transport_class, transport_for

PREFIX = "django_domain_events"

_EXAMPLE_TRANSPORTS = f'{{"default": {{"BACKEND": "{RABBITMQ}", "URL": "amqp://..."}}}}'


def _configured() -> dict[str, Any] | None:
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    return configured if isinstance(configured, dict) else None  # else E002


@register(Tags.compatibility)
def check_routes(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E100 a malformed ``ROUTES`` or ``TRANSPORTS``, E101 a route naming an unknown
    transport, E102 a route for an event type that is no integration event, E103 a transport
    whose backend cannot be used, W104 a wildcard route that matches no integration event."""
    configured = _configured()
    if configured is None:
        return []
    errors = _shape_errors(configured)
    if errors:
        return errors
    errors.extend(_transport_errors())
    errors.extend(_entry_errors())
    known = settings.TRANSPORTS
    for cls, route in all_routes():
        if route.transport not in known:
            where = (
                f"{cls.__qualname__}.destination"
                if cls.destination == route.destination
                and cls.destination_transport == route.transport
                else f'DOMAIN_EVENTS["ROUTES"] for {cls.event_type!r}'
            )
            errors.append(
                Error(
                    f"The route of {cls.event_type} to {route.destination!r} ({where}) names "
                    f"the transport {route.transport!r}, which DOMAIN_EVENTS['TRANSPORTS'] "
                    f"does not declare.",
                    hint=f'Declare it: DOMAIN_EVENTS["TRANSPORTS"] = {_EXAMPLE_TRANSPORTS}, or '
                    f"name one that is declared ({', '.join(sorted(known)) or 'none is'}).",
                    id=f"{PREFIX}.E101",
                )
            )
    return errors


@register(Tags.compatibility, deploy=True)
def check_transport_brokers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """What each configured transport finds wrong with its broker (W105: a Redis server that
    keeps nothing on disk). A deployment check, as it asks the brokers: ``check --deploy``."""
    configured = _configured()
    if configured is None or _shape_errors(configured) or _transport_errors():
        return []  # E100, E103
    found: list[CheckMessage] = []
    for alias in settings.TRANSPORTS:
        try:
            transport = transport_for(str(alias))
        except (TransportError, ValueError, TypeError):
            continue  # reported when it is used, with what is wrong
        found.extend(transport.check())
    return found


def _shape_errors(configured: Mapping[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key, example in (
        ("TRANSPORTS", _EXAMPLE_TRANSPORTS),
        ("ROUTES", '{"shop.OrderShipped": {"DESTINATION": "orders"}}'),
    ):
        value = configured.get(key, {})
        if not isinstance(value, dict):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {type(value).__name__}, not a dict.",
                    hint=f"Write it as {example}.",
                    id=f"{PREFIX}.E100",
                )
            )
    source = configured.get("INTEGRATION_SOURCE")
    if source is not None and (not isinstance(source, str) or not source):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['INTEGRATION_SOURCE'] is {source!r}; give a non-empty string "
                f"(a URI reference such as '/shop').",
                hint="The default is '/<project>', from ROOT_URLCONF.",
                id=f"{PREFIX}.E100",
            )
        )
    return errors


def _transport_errors() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias, config in settings.TRANSPORTS.items():
        if not isinstance(config, dict):
            errors.append(
                Error(
                    f'DOMAIN_EVENTS["TRANSPORTS"][{alias!r}] is {type(config).__name__}, not '
                    f"a dict.",
                    hint=f"Write it as {_EXAMPLE_TRANSPORTS}.",
                    id=f"{PREFIX}.E100",
                )
            )
            continue
        unknown = sorted(str(key) for key in config if key not in ("BACKEND", "URL", "OPTIONS"))
        if unknown:
            errors.append(
                Error(
                    f'DOMAIN_EVENTS["TRANSPORTS"][{alias!r}] has unknown key(s) '
                    f"{', '.join(unknown)}.",
                    hint="A transport takes BACKEND, URL and OPTIONS (a dict).",
                    id=f"{PREFIX}.E100",
                )
            )
        try:
            transport_class(str(alias), config)
        except TransportConfigurationError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint=(
                        'The RabbitMQ transport needs kombu: pip install "django-domain-outbox'
                        '[rabbitmq]"; the Redis Streams transport needs redis: pip install '
                        '"django-domain-outbox[redis]" (the [celery] extra brings both).'
                    ),
                    id=f"{PREFIX}.E103",
                )
            )
    return errors


def _entry_errors() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    classes = integration_classes()
    for entry in configured_entries():
        problem = entry_problem(entry)
        if problem is not None:
            errors.append(
                Error(
                    f'The route of DOMAIN_EVENTS["ROUTES"][{entry.pattern!r}] {problem}.',
                    hint='A route is {"DESTINATION": "orders"}, optionally with TRANSPORT, '
                    "ROUTING_KEY, MODE, DISPATCHER, QUEUE, MAX_ATTEMPTS and ORDERED.",
                    id=f"{PREFIX}.E100",
                )
            )
            continue
        if is_wildcard(entry.pattern):
            if not any(pattern_matches(entry.pattern, cls.event_type) for cls in classes):
                errors.append(
                    Warning(
                        f'DOMAIN_EVENTS["ROUTES"][{entry.pattern!r}] matches no integration '
                        f"event, so nothing is sent by it.",
                        hint="Routes only ever send IntegrationEvent subclasses: check the "
                        "prefix, or that the events' module is imported at start-up.",
                        id=f"{PREFIX}.W104",
                    )
                )
            continue
        cls = event_class_for(entry.pattern)
        if cls is None or cls.event_kind != "integration":
            what = (
                "no event class declares it"
                if cls is None
                else f"{cls.__qualname__} is a domain event"
            )
            errors.append(
                Error(
                    f'DOMAIN_EVENTS["ROUTES"] routes {entry.pattern!r} to a broker, but '
                    f"{what}: only integration events leave the project.",
                    hint="Subclass IntegrationEvent for an event other services consume (its "
                    "payload is then a contract), or remove the route.",
                    id=f"{PREFIX}.E102",
                )
            )
    return errors
