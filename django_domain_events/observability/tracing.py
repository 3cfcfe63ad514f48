"""``DOMAIN_EVENTS["TRACING"]``: OpenTelemetry spans from ``publish()`` to every receiver run.

``publish()`` runs in a producer span and stores its trace context (W3C ``traceparent``, through
the project's configured propagator) in the event's ``headers``. Each receiver run is a consumer
span whose parent is that stored context, wherever the delivery runs: in the publishing process,
in a Celery worker, or from the relay. The headers travel with the delivery
(``OwedDelivery.headers``): handed over in memory after the commit, or loaded with the event by
the Celery task, the relay and ``run_delivery()``; a delivery that comes without them costs one
primary-key read. A span active around the run (a Celery task's, say) in another trace is added
as a link. Only ``opentelemetry-api`` is used; the project configures the SDK and exporters.
``opentelemetry`` is imported only once tracing is on; ``enabled()`` is cached until
``DOMAIN_EVENTS`` changes, as ``debug_logging.enabled()`` is.

What a span costs is kept to what the SDK needs: spans are started with ``start_span()`` and
made current by hand, not through the API's nested context managers; a span without a valid
context (the API's no-op tracer, when no SDK is set up) is neither made current nor injected;
and the attributes that are not needed for sampling are built only for a span that records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from django_domain_events.conf import SettingSwitch, settings

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from django_domain_events.declaration.envelope import Envelope
    from django_domain_events.dispatchers.base import OwedDelivery

logger = logging.getLogger("django_domain_events")

SYSTEM = "django_domain_events"
"""The ``messaging.system`` attribute of every span."""


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


class _Api:
    """The parts of ``opentelemetry-api`` the spans use, imported once: an import statement in
    every span would cost more than the no-op span itself."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        # The API's tracer is a proxy that follows the provider the project sets, even later.
        self.tracer = trace.get_tracer("django_domain_events")
        self.attach = context.attach
        self.detach = context.detach
        self.inject = propagate.inject
        self.extract = propagate.extract
        self.current_span = trace.get_current_span
        self.in_context = trace.set_span_in_context
        self.link = Link
        self.producer = SpanKind.PRODUCER
        self.consumer = SpanKind.CONSUMER
        self.status = Status
        self.error = StatusCode.ERROR


_api_instance: _Api | None = None


def _api() -> _Api:
    global _api_instance
    if _api_instance is None:
        _api_instance = _Api()
    return _api_instance


def trace_context() -> dict[str, str]:
    """The current span's trace context as W3C headers (``traceparent``, ``tracestate``),
    through the project's propagator; empty when tracing is off or no span is current."""
    if not enabled():
        return {}
    carrier: dict[str, str] = {}
    _api().inject(carrier)
    return carrier


class _ActiveSpan:
    """A started span made current until ``__exit__``, which records an exception that
    escapes the block (as the API's ``use_span()`` does) and ends the span."""

    __slots__ = ("span", "token")

    def __init__(self) -> None:
        self.span: Span | None = None
        """The span, or None when it has no valid context (no SDK): nothing to end."""
        self.token: Any = None

    def _activate(self, api: _Api, span: Span) -> None:
        if span.get_span_context().is_valid:
            self.span = span
            self.token = api.attach(api.in_context(span))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self.span
        if span is None:
            return
        api = _api()
        api.detach(self.token)
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_status(api.status(api.error, f"{type(exc).__name__}: {exc}"))
        span.end()


class PublishSpan(_ActiveSpan):
    """The producer span of one ``publish()`` or ``publish_many()`` call, as a context
    manager, and the headers its events store."""

    __slots__ = ("event_types", "headers")

    def __init__(self, event_types: Sequence[str]) -> None:
        super().__init__()
        self.event_types = event_types
        self.headers: dict[str, str] = {}
        """The trace context to store in each event's ``headers`` (empty when the span has no
        valid context, as without an SDK)."""

    def __enter__(self) -> PublishSpan:
        api = _api()
        types = self.event_types
        destination = types[0] if len(set(types)) == 1 else ""
        # The attributes known at the start are passed to start_span(), for samplers.
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
        }
        if destination:
            attributes["messaging.destination.name"] = destination
        span = api.tracer.start_span(
            f"publish {destination}" if destination else "publish",
            kind=api.producer,
            attributes=attributes,
        )
        self._activate(api, span)
        if self.span is not None:
            api.inject(self.headers)
        return self

    def record(self, events: Sequence[Sequence[Any]]) -> None:
        """Add the ids of the rows written (``models.EVENT_COLUMNS`` order) to a span that
        records."""
        span = self.span
        if span is None or not span.is_recording():
            return
        if len(events) == 1:
            event_id, _type, _version, _payload, _at, correlation_id, causation_id, *_ = events[0]
            span.set_attributes(
                {
                    "messaging.message.id": str(event_id),
                    "messaging.message.conversation_id": str(correlation_id),
                    "domain_events.correlation_id": str(correlation_id),
                    "domain_events.causation_id": str(causation_id or ""),
                }
            )
        else:
            span.set_attribute("messaging.batch.message_count", len(events))


class ReceiverSpan(_ActiveSpan):
    """A consumer span around one receiver run, as a context manager: a child of the context
    stored at publish, read from ``headers`` (the event's, as loaded with it).

    The receiver's exception, if any, is recorded on the span and sets its status to error.
    """

    __slots__ = ("envelope", "headers", "owed")

    def __init__(self, owed: OwedDelivery, envelope: Envelope, headers: Mapping[str, Any]) -> None:
        super().__init__()
        self.owed = owed
        self.envelope = envelope
        self.headers = headers

    def __enter__(self) -> ReceiverSpan:
        api = _api()
        owed, envelope = self.owed, self.envelope
        parent = _extract(api, self.headers) if self.headers else None
        links = None
        current = api.current_span().get_span_context()
        if current.is_valid:
            stored = api.current_span(parent).get_span_context() if parent is not None else None
            if stored is None or current.trace_id != stored.trace_id:
                links = [api.link(current)]
        span = api.tracer.start_span(
            f"process {envelope.event_type}",
            context=parent,
            kind=api.consumer,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.destination.name": envelope.event_type,
                "messaging.consumer.group.name": envelope.receiver or owed.receiver,
            },
            links=links,
        )
        self._activate(api, span)
        if self.span is not None and span.is_recording():
            span.set_attributes(
                {
                    "messaging.operation.name": "process",
                    "messaging.message.id": str(envelope.event_id),
                    "messaging.message.conversation_id": envelope.correlation_id,
                    "domain_events.correlation_id": envelope.correlation_id,
                    "domain_events.causation_id": str(envelope.causation_id or ""),
                    "domain_events.delivery_id": str(owed.delivery_id),
                    "domain_events.receiver": owed.receiver,
                    "domain_events.dispatcher": owed.dispatcher,
                    "domain_events.attempt": envelope.attempt,
                }
            )
        return self


class ConsumeSpan(_ActiveSpan):
    """The consumer span of one ``@consumer`` receiver run on a message taken from a broker,
    continuing the trace of the message's ``traceparent`` extension (if it has one)."""

    __slots__ = ("envelope", "extensions")

    def __init__(self, envelope: Envelope, extensions: Mapping[str, str]) -> None:
        super().__init__()
        self.envelope = envelope
        self.extensions = extensions

    def __enter__(self) -> ConsumeSpan:
        api = _api()
        envelope = self.envelope
        carrier = {
            key: self.extensions[key]
            for key in ("traceparent", "tracestate")
            if key in self.extensions
        }
        parent = _extract(api, carrier) if carrier else None
        span = api.tracer.start_span(
            f"process {envelope.event_type}",
            context=parent,
            kind=api.consumer,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.destination.name": envelope.event_type,
                "messaging.consumer.group.name": envelope.receiver or "",
            },
        )
        self._activate(api, span)
        if self.span is not None and span.is_recording():
            span.set_attributes(
                {
                    "messaging.operation.name": "process",
                    "messaging.message.id": str(envelope.event_id),
                    "messaging.message.conversation_id": envelope.correlation_id,
                    "domain_events.receiver": envelope.receiver or "",
                    "domain_events.attempt": envelope.attempt,
                }
            )
        return self


def _extract(api: _Api, headers: Mapping[str, Any]) -> Any:
    try:
        return api.extract(headers)
    except Exception:
        # Headers are JSON anyone can write; a context that cannot be read is not a reason to
        # fail the delivery.
        logger.warning("Unreadable trace context in event headers %.200r; not used", headers)
        return None
