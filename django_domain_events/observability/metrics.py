"""``DOMAIN_EVENTS["METRICS"]``: Prometheus metrics of publishing and delivery.

Counters and histograms are updated where events are published and deliveries run; the gauges
(owed deliveries, the oldest one's age, deliveries by state) are read from the outbox when
Prometheus scrapes, at most once per ``METRICS_CACHE_SECONDS``. ``prometheus_client`` is imported
only once metrics are on: ``enabled()`` is asked at every publish and delivery, so its answer is
cached until ``DOMAIN_EVENTS`` changes, as ``debug_logging.enabled()`` does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django_domain_events.conf import SettingSwitch, settings

if TYPE_CHECKING:
    import datetime as dt

    from django.http import HttpRequest, HttpResponse
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from django_domain_events.declaration.envelope import Envelope
    from django_domain_events.declaration.events import DomainEvent, NamedEvent
    from django_domain_events.dispatchers.base import OwedDelivery

logger = logging.getLogger("django_domain_events")

PREFIX = "domain_events"
"""Prefix of every metric's name."""

_instruments: _Instruments | None = None
_registry: CollectorRegistry | None = None
_lock = threading.Lock()


def _metrics_on() -> bool:
    """Whether metrics are on: ``DOMAIN_EVENTS["METRICS"]`` and ``prometheus_client``
    installed; ask ``enabled()``, which caches it."""
    return settings.METRICS and _importable()


enabled = SettingSwitch(_metrics_on)


def _importable() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        logger.warning(
            'DOMAIN_EVENTS["METRICS"] is on but prometheus_client is not installed; no metrics '
            'are recorded. Install it with: pip install "django-domain-outbox[prometheus]".'
        )
        return False
    return True


class _Instruments:
    """The counters and histograms, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Histogram

        self.published = Counter(
            f"{PREFIX}_published",
            "Events published (committed), by event type.",
            ["event_type"],
            registry=registry,
        )
        self.deliveries = Counter(
            f"{PREFIX}_deliveries",
            "Delivery runs by receiver and outcome: delivered, failed (retry later), dead, "
            "skipped (settled or run by another copy).",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_delivery_duration_seconds",
            "Time to run one delivery (claim, receiver, outcome recorded), by receiver.",
            ["receiver"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_delivery_latency_seconds",
            "Time from publish to the start of a receiver run, by dispatcher.",
            ["dispatcher"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=registry,
        )
        self.lost_connections = Counter(
            f"{PREFIX}_lost_connections",
            "Delivery runs ended by a lost database connection, retried without counting as "
            "one of the receiver's attempts. By receiver.",
            ["receiver"],
            registry=registry,
        )
        self.sends_skipped = Counter(
            f"{PREFIX}_sends_skipped",
            "Deliveries a dispatcher did not send because its broker failed moments ago (the "
            "cool-down); they stay owed for the relay. By dispatcher.",
            ["dispatcher"],
            registry=registry,
        )
        self.relay_wakeups = Counter(
            f"{PREFIX}_relay_wakeups",
            "Relay passes after a wait, by what ended the wait: notified (a NOTIFY on "
            "RELAY_CHANNEL), poll (RELAY_INTERVAL went by), reconnected (its listening "
            "connection came back, so a notification may have been missed).",
            ["reason"],
            registry=registry,
        )
        self.cancelled = Counter(
            f"{PREFIX}_deliveries_cancelled",
            "Deliveries a person cancelled before they were delivered, by receiver.",
            ["receiver"],
            registry=registry,
        )
        self.consumed = Counter(
            f"{PREFIX}_consumed",
            "Messages consumed from a broker, one per @consumer receiver, by outcome: "
            "processed, duplicate (processed already, no effect), failed (given back to the "
            "broker), dead, unknown_type, malformed.",
            ["outcome"],
            registry=registry,
        )
        self.outbox = OutboxCollector()
        registry.register(self.outbox)
        # Labelled children by label values: labels() validates and locks at every call, which
        # costs more than the update itself on the publish and delivery paths.
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, kept once made."""
        key = (id(metric), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


def registry() -> CollectorRegistry:
    """The registry the metrics live in: ``prometheus_client.REGISTRY`` unless
    ``use_registry()`` says otherwise."""
    if _registry is not None:
        return _registry
    from prometheus_client import REGISTRY

    return REGISTRY


def _get_instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments(registry())
    return _instruments


@contextmanager
def use_registry(replacement: CollectorRegistry) -> Iterator[CollectorRegistry]:
    """Record metrics in ``replacement`` inside the block (a fresh ``CollectorRegistry`` per
    test keeps counts from leaking between tests)."""
    global _registry, _instruments
    previous = _registry, _instruments
    _registry, _instruments = replacement, None
    try:
        yield replacement
    finally:
        _registry, _instruments = previous


def published(envelopes: Sequence[tuple[DomainEvent | NamedEvent, Envelope]]) -> None:
    """Count events that were just committed."""
    instruments = _get_instruments()
    for _event, envelope in envelopes:
        instruments.child(instruments.published, envelope.event_type).inc()


def receiver_started(owed: OwedDelivery, occurred_at: dt.datetime) -> None:
    """Observe the time from publish to the receiver run about to start."""
    seconds = time.time() - occurred_at.timestamp()
    instruments = _get_instruments()
    instruments.child(instruments.latency, owed.dispatcher).observe(max(seconds, 0.0))


def delivered(owed: OwedDelivery, outcome: str, seconds: float) -> None:
    """Count one run of a delivery and observe how long it took."""
    instruments = _get_instruments()
    instruments.child(instruments.deliveries, owed.receiver, outcome).inc()
    instruments.child(instruments.duration, owed.receiver).observe(seconds)


def lost_connection(owed: OwedDelivery) -> None:
    """Count a run that a lost database connection ended (not counted as an attempt)."""
    instruments = _get_instruments()
    instruments.child(instruments.lost_connections, owed.receiver).inc()


def sends_skipped(dispatcher: str, count: int) -> None:
    """Count deliveries left owed without trying the broker, during its cool-down."""
    instruments = _get_instruments()
    instruments.child(instruments.sends_skipped, dispatcher).inc(count)


def cancelled(receivers: Iterable[str]) -> None:
    """Count cancelled deliveries, one receiver name per delivery."""
    instruments = _get_instruments()
    for receiver in receivers:
        instruments.child(instruments.cancelled, receiver).inc()


def relay_woken(reason: str) -> None:
    """Count a relay pass started after a wait, by what ended the wait."""
    instruments = _get_instruments()
    instruments.child(instruments.relay_wakeups, reason).inc()


def consumed(outcome: str) -> None:
    """Count one consumed message's outcome for one receiver."""
    instruments = _get_instruments()
    instruments.child(instruments.consumed, outcome).inc()


class OutboxCollector:
    """Gauges read from the outbox on scrape (``health.outbox_status()``), cached for
    ``METRICS_CACHE_SECONDS`` so frequent scrapes never rescan a large table."""

    def __init__(self, *, using: str | None = None, cache: bool = True) -> None:
        self.using = using
        self.cache = cache
        self._read_at = -float("inf")
        self._families: list[Metric] = []
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        # Registering asks for the names; without describe() it would call collect(), which
        # queries the database, possibly before Django is ready.
        return self._build(None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = time.monotonic()
            if not self.cache or now - self._read_at >= settings.METRICS_CACHE_SECONDS:
                from django_domain_events.operations.health import outbox_status

                self._families = self._build(outbox_status(using=self.using))
                self._read_at = now
            return list(self._families)

    @staticmethod
    def _build(status: Any) -> list[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from django_domain_events.operations.health import STATES

        by_state = GaugeMetricFamily(
            f"{PREFIX}_outbox_deliveries", "Deliveries in the outbox, by state.", labels=["state"]
        )
        owed = GaugeMetricFamily(
            f"{PREFIX}_outbox_owed_deliveries",
            "Deliveries a relay would dispatch now (pending past the grace, retry due, lost).",
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_owed_age_seconds",
            "How long the owed delivery waiting longest has waited (0: nothing owed).",
        )
        dead = GaugeMetricFamily(f"{PREFIX}_outbox_dead_deliveries", "Dead deliveries.")
        blocked = GaugeMetricFamily(
            f"{PREFIX}_outbox_blocked_ordering_keys",
            "Ordering keys an ordered receiver cannot go on with: a dead delivery holds them up.",
        )
        if status is not None:
            for state in STATES:
                by_state.add_metric([state], status.by_state.get(state, 0))
            owed.add_metric([], status.owed)
            oldest.add_metric([], status.oldest_owed_seconds or 0.0)
            dead.add_metric([], status.dead)
            blocked.add_metric([], status.blocked_keys)
        return [by_state, owed, oldest, dead, blocked]


def exposition(*, outbox_only: bool = False, using: str | None = None) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn, Celery prefork), the counters and histograms
    of every process are read from that directory. ``outbox_only`` gives just the gauges, read
    now (``events_status --prometheus``).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    if outbox_only:
        fresh = CollectorRegistry()
        fresh.register(OutboxCollector(using=using, cache=False))
        return generate_latest(fresh), CONTENT_TYPE_LATEST
    instruments = _get_instruments()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        combined.register(instruments.outbox)
        return generate_latest(combined), CONTENT_TYPE_LATEST
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def metrics_view(request: HttpRequest) -> HttpResponse:
    """A view serving the metrics to Prometheus; mount it in the URLconf (and protect it as
    you would any internal endpoint)."""
    from django.http import HttpResponse

    if not enabled():
        return HttpResponse(
            'Metrics are off: set DOMAIN_EVENTS["METRICS"] = True and install prometheus_client.',
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def start_http_server(port: int, addr: str = "0.0.0.0") -> None:
    """Serve the metrics on ``port`` from a background thread (``relay_events --metrics-port``)."""
    import prometheus_client

    _get_instruments()
    prometheus_client.start_http_server(port, addr=addr, registry=_ClosingConnections(registry()))


class _ClosingConnections:
    """A registry that closes this thread's database connections after each scrape.

    ``prometheus_client``'s server answers each scrape in a new thread, where reading the gauges
    opens a connection that no request cycle would close.
    """

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def collect(self) -> Iterable[Metric]:
        from django.db import connections

        try:
            return list(self.wrapped.collect())
        finally:
            connections.close_all()

    def restricted_registry(self, names: Iterable[str]) -> _ClosingConnections:
        return _ClosingConnections(self.wrapped.restricted_registry(names))
