"""Publishing and sync dispatch with metrics or tracing on, beside the same work with both off.

- publish-1-tracing-api: ``publish-1`` (rows only, deferred) with tracing on and no SDK.
- sync-e2e-metrics: ``sync-e2e`` with ``DOMAIN_EVENTS["METRICS"]`` on (prometheus_client).
- sync-e2e-tracing-api: ``sync-e2e`` with ``DOMAIN_EVENTS["TRACING"]`` on and no SDK: the
  OpenTelemetry API's no-op tracer, as in a project that installed only ``opentelemetry-api``.
- sdk-spans: ``sync-e2e`` with tracing off, and two bare SDK spans per event (one around
  ``publish()``, one in the receiver): what the SDK itself costs for the two spans tracing makes.
- sync-e2e-tracing-sdk: ``sync-e2e`` with tracing on, the SDK recording every span and exporting
  it to memory (``SimpleSpanProcessor`` + ``InMemorySpanExporter``).

Each is compared with ``publish-1`` or ``sync-e2e`` measured in the same repetitions; tracing's
own cost on top of the SDK's is the ratio of sync-e2e-tracing-sdk to sdk-spans.

OpenTelemetry lets a process set its tracer provider once, so the run sets one of its own,
``_SwitchedProvider``, the first time a tracing case runs: its tracer hands each span to the
API's no-op tracer or to the SDK's, whichever the running case chose (one more Python call per
span, in every tracing case alike).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction

from django_domain_events import publish, receiver
from django_domain_events.models import Delivery, DeliveryState

from ..benchapp.events import TOTAL, OrderPlaced, publish_orders
from ..benchapp.noops import noop_receivers
from ..harness import Bench, Target, rate_case

# At most 10% slower than sync-e2e: 1 / 1.1.
TARGET = Target(postgresql=0.91, sqlite=0.91)


def _missing(module: str, extra: str) -> str | None:
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed (pip install {extra})"
    return None


def _prometheus_unavailable() -> str | None:
    return _missing("prometheus_client", "prometheus_client")


def _sdk_unavailable() -> str | None:
    return _missing("opentelemetry.sdk.trace", "opentelemetry-sdk")


class _SwitchedTracer:
    """The tracer of the run's provider: hands each span to the tracer the running case chose,
    the API's no-op tracer unless one of the SDK cases runs."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        sdk = TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.sdk = sdk.get_tracer("benchmarks")
        self.noop = trace.NoOpTracer()
        self.current: Any = self.noop

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return self.current.start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self.current.start_as_current_span(*args, **kwargs)

    @contextmanager
    def using(self, tracer: Any) -> Iterator[None]:
        """Hand the block's spans to ``tracer``; the exporter starts the block empty."""
        self.exporter.clear()
        self.current = tracer
        try:
            yield
        finally:
            self.current = self.noop


class _SwitchedProvider:
    """The run's global tracer provider: the one tracer above for every name."""

    def __init__(self) -> None:
        self.tracer = _SwitchedTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> _SwitchedTracer:
        return self.tracer


_provider: _SwitchedProvider | None = None


def _tracers() -> _SwitchedTracer:
    """The run's switched tracer, set up as the global provider's on first use."""
    global _provider
    if _provider is None:
        from opentelemetry import trace

        provider = _SwitchedProvider()
        trace.set_tracer_provider(provider)  # type: ignore[arg-type]
        if trace.get_tracer_provider() is not provider:
            raise RuntimeError("A tracer provider was already set in this process.")
        _provider = provider
    return _provider.tracer


def _expect_delivered(bench: Bench) -> None:
    delivered = Delivery.objects.using(bench.alias).filter(state=DeliveryState.DELIVERED).count()
    bench.expect("deliveries delivered", delivered, bench.n)


@rate_case(
    "sync-e2e-metrics",
    "sync-e2e with METRICS on",
    floor="sync-e2e",
    target=TARGET,
    needs=_prometheus_unavailable,
)
def sync_dispatch_with_metrics(bench: Bench) -> None:
    with noop_receivers(1, dispatcher="sync", options={"METRICS": True}), bench.timed():
        publish_orders(bench.n, bench.alias)
    _expect_delivered(bench)


@rate_case(
    "sync-e2e-tracing-api",
    "sync-e2e with TRACING on, opentelemetry-api only (no-op tracer)",
    floor="sync-e2e",
    target=TARGET,
    needs=_sdk_unavailable,
)
def sync_dispatch_traced_without_sdk(bench: Bench) -> None:
    tracers = _tracers()
    with (
        tracers.using(tracers.noop),
        noop_receivers(1, dispatcher="sync", options={"TRACING": True}),
        bench.timed(),
    ):
        publish_orders(bench.n, bench.alias)
    _expect_delivered(bench)


@rate_case(
    "publish-1-tracing-api",
    "publish-1 with TRACING on, opentelemetry-api only (no-op tracer)",
    floor="publish-1",
    target=TARGET,
    needs=_sdk_unavailable,
)
def publish_traced_without_sdk(bench: Bench) -> None:
    tracers = _tracers()
    alias = bench.alias
    with (
        tracers.using(tracers.noop),
        noop_receivers(1, dispatcher="deferred", options={"TRACING": True}),
        bench.timed(),
    ):
        publish_orders(bench.n, bench.alias)
    bench.expect("deliveries", Delivery.objects.using(alias).count(), bench.n)


@rate_case(
    "sdk-spans",
    "sync-e2e with tracing off + 2 bare SDK spans per event (around publish(), in the receiver)",
    floor="sync-e2e",
    needs=_sdk_unavailable,
)
def sync_dispatch_with_bare_sdk_spans(bench: Bench) -> None:
    tracers = _tracers()
    sdk = tracers.sdk

    def spanned_noop(event: OrderPlaced) -> None:
        with sdk.start_as_current_span("receiver"):
            pass

    alias = bench.alias
    with tracers.using(sdk), noop_receivers(0, dispatcher="sync"):
        receiver(OrderPlaced, name="benchmarks.spanned_noop")(spanned_noop)
        with bench.timed():
            for i in range(bench.n):
                with transaction.atomic(using=alias), sdk.start_as_current_span("publish"):
                    publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
        spans = len(tracers.exporter.get_finished_spans())
    _expect_delivered(bench)
    bench.expect("spans exported", spans, 2 * bench.n)


@rate_case(
    "sync-e2e-tracing-sdk",
    "sync-e2e with TRACING on, SDK + in-memory exporter",
    floor="sync-e2e",
    needs=_sdk_unavailable,
)
def sync_dispatch_traced_with_sdk(bench: Bench) -> None:
    tracers = _tracers()
    with (
        tracers.using(tracers.sdk),
        noop_receivers(1, dispatcher="sync", options={"TRACING": True}),
    ):
        with bench.timed():
            publish_orders(bench.n, bench.alias)
        spans = len(tracers.exporter.get_finished_spans())
    _expect_delivered(bench)
    bench.expect("spans exported", spans, 2 * bench.n)
