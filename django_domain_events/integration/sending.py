"""Sending an integration event along its route: the stored event as a CloudEvents message,
handed to the route's transport, which returns once the broker confirmed it."""

from __future__ import annotations

import datetime as dt

import msgspec

from django_domain_events.conf import settings
from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent
from django_domain_events.integration.messages import Message
from django_domain_events.integration.routes import Route
from django_domain_events.observability import tracing


def message_for(event: DomainEvent, envelope: Envelope) -> Message:
    """The CloudEvents message of ``event``: its id, type and time from the envelope, ``data``
    the payload's JSON as the outbox's codec writes it, and the version, correlation and
    causation ids, ordering key and current trace context as extensions."""
    extensions = {"dataversion": str(type(event).version)}
    if envelope.correlation_id:
        extensions["correlationid"] = envelope.correlation_id
    if envelope.causation_id is not None:
        extensions["causationid"] = str(envelope.causation_id)
    if envelope.ordering_key:
        extensions["orderingkey"] = envelope.ordering_key
    for name, value in tracing.trace_context().items():
        if name in ("traceparent", "tracestate"):
            extensions[name] = value
    occurred_at = envelope.occurred_at
    if occurred_at.utcoffset() is None:  # USE_TZ = False: the outbox stores UTC
        occurred_at = occurred_at.replace(tzinfo=dt.UTC)
    return Message(
        id=str(envelope.event_id),
        source=settings.INTEGRATION_SOURCE,
        type=envelope.event_type,
        time=occurred_at,
        # The codec the outbox stored the payload with: the same bytes, decoded exactly.
        data=msgspec.json.encode(event),
        extensions=extensions,
    )


def send_event(route: Route, event: DomainEvent, envelope: Envelope) -> None:
    """Send ``event`` along ``route``; raises ``TransportError`` unless the broker confirmed."""
    from django_domain_events.transports import Destination, transport_for

    destination = Destination(route.destination, route.routing_key, route.mode)
    transport_for(route.transport).send(destination, [message_for(event, envelope)])
