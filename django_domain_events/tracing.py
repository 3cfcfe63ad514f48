"""``DOMAIN_EVENTS["TRACING"]``: OpenTelemetry spans from ``publish()`` to every receiver run.

``publish()`` runs in a producer span and stores its trace context (W3C ``traceparent``, through
the project's configured propagator) in the event's ``headers``. Each receiver run is a consumer
span whose parent is that stored context, wherever the delivery runs: in the publishing process,
in a Celery worker, or from the relay. A span active around the run (a Celery task's, say) in
another trace is added as a link. Only ``opentelemetry-api`` is used; the project configures the
SDK and exporters. ``opentelemetry`` is imported only once tracing is on; ``enabled()`` is cached
until ``DOMAIN_EVENTS`` changes, as ``debug_logging.enabled()`` is.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .conf import SettingSwitch, settings

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .dispatchers.base import OwedDelivery
    from .envelope import Envelope

logger = logging.getLogger("django_domain_events")

SYSTEM = "django_domain_events"
"""The ``messaging.system`` attribute of every span."""

_tracer_instance: Any = None

RECENT_HEADERS = 10_000
"""How many recently published events' headers this process remembers, so receivers run in the
publishing process find their parent context without reading it back from the database."""

_recent: OrderedDict[uuid.UUID, dict[str, str]] = OrderedDict()
_recent_lock = threading.Lock()


def _tracing_on() -> bool:
    """Whether tracing is on: ``DOMAIN_EVENTS["TRACING"]`` and ``opentelemetry-api``
    installed; ask ``enabled()``, which caches it."""
    return settings.TRACING and _importable()


enabled = SettingSwitch(_tracing_on)


def _importable() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        logger.warning(
            'DOMAIN_EVENTS["TRACING"] is on but opentelemetry-api is not installed; no spans '
            'are made. Install it with: pip install "django-domain-outbox[otel]".'
        )
        return False
    return True


def _tracer() -> Any:
    # The API's tracer is a proxy that follows the provider the project sets, even later.
    global _tracer_instance
    if _tracer_instance is None:
        from opentelemetry import trace

        _tracer_instance = trace.get_tracer("django_domain_events")
    return _tracer_instance


def _remember(event_id: uuid.UUID, headers: dict[str, str]) -> None:
    with _recent_lock:
        _recent[event_id] = headers
        if len(_recent) > RECENT_HEADERS:
            _recent.popitem(last=False)


class PublishTrace:
    """The producer span of one ``publish()`` call and the headers its events store."""

    __slots__ = ("headers", "span")

    def __init__(self, span: Span, headers: dict[str, str]) -> None:
        self.span = span
        self.headers = headers
        """The trace context to store in each event's ``headers`` (empty when not sampled
        or no SDK is configured)."""

    def record(self, events: Sequence[Sequence[Any]]) -> None:
        """Add the ids of the rows written (``inserts.EVENT_COLUMNS`` order) to the span."""
        for row in events:
            _remember(row[0], self.headers)
        if not self.span.is_recording():
            return
        if len(events) == 1:
            event_id, _type, _version, _payload, _at, correlation_id, causation_id, *_ = events[0]
            self.span.set_attributes(
                {
                    "messaging.message.id": str(event_id),
                    "messaging.message.conversation_id": str(correlation_id),
                    "domain_events.correlation_id": str(correlation_id),
                    "domain_events.causation_id": str(causation_id or ""),
                }
            )
        else:
            self.span.set_attribute("messaging.batch.message_count", len(events))


@contextmanager
def publish_trace(event_types: Sequence[str]) -> Iterator[PublishTrace]:
    """A producer span around one ``publish()`` or ``publish_many()`` call."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    distinct = sorted(set(event_types))
    destination = distinct[0] if len(distinct) == 1 else ""
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
    }
    if destination:
        attributes["messaging.destination.name"] = destination
    name = f"publish {destination}" if destination else "publish"
    with _tracer().start_as_current_span(
        name, kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield PublishTrace(span, headers)


@contextmanager
def receiver_span(owed: OwedDelivery, envelope: Envelope) -> Iterator[Span]:
    """A consumer span around one receiver run, a child of the context stored at publish.

    The receiver's exception, if any, is recorded on the span and sets its status to error.
    """
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind

    headers = _stored_headers(owed, envelope)
    parent = propagate.extract(headers) if headers else None
    links = []
    current = trace.get_current_span().get_span_context()
    stored = trace.get_current_span(parent).get_span_context() if parent is not None else None
    if current.is_valid and (stored is None or current.trace_id != stored.trace_id):
        links.append(Link(current))
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": envelope.event_type,
        "messaging.consumer.group.name": envelope.receiver or owed.receiver,
        "messaging.message.id": str(envelope.event_id),
        "messaging.message.conversation_id": envelope.correlation_id,
        "domain_events.correlation_id": envelope.correlation_id,
        "domain_events.causation_id": str(envelope.causation_id or ""),
        "domain_events.delivery_id": str(owed.delivery_id),
        "domain_events.receiver": owed.receiver,
        "domain_events.dispatcher": owed.dispatcher,
        "domain_events.attempt": envelope.attempt,
    }
    with _tracer().start_as_current_span(
        f"process {envelope.event_type}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    ) as span:
        yield span


def _stored_headers(owed: OwedDelivery, envelope: Envelope) -> dict[str, str]:
    # The envelope does not carry the headers: events published by this process are
    # remembered; others (run by a Celery worker, the relay) cost one primary-key read.
    with _recent_lock:
        remembered = _recent.get(envelope.event_id)
    if remembered is not None:
        return remembered
    from .models import OutboxEvent

    found = (
        OutboxEvent.objects.using(owed.using)
        .filter(pk=envelope.event_id)
        .values_list("headers", flat=True)
        .first()
    )
    if not isinstance(found, dict):
        return {}
    return {str(key): str(value) for key, value in found.items() if isinstance(value, str)}
