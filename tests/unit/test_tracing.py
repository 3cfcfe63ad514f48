"""DOMAIN_EVENTS["TRACING"]: a producer span around publish(), its trace context stored in the
event's headers, and a consumer span per receiver run whose parent is that context, whether the
delivery runs at commit or later from the outbox."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_domain_events import publish, publish_many, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.delivery.runner import run_delivery
from django_domain_events.dispatchers.base import Dispatcher
from django_domain_events.models import Delivery, OutboxEvent
from django_domain_events.testing import drain
from tests.testapp.events import Pinged, Ponged

pytestmark = pytest.mark.django_db(transaction=True)

ON = {"TRACING": True}


@pytest.fixture
def receivers(receiver_registry: Registry) -> None:
    @receiver(Pinged, name="unit_tracing.on_ping")
    def on_ping(event: Pinged) -> None:
        if event.n < 0:
            raise ValueError("negative ping")
        publish(Ponged(n=event.n))

    receiver(Ponged, name="unit_tracing.on_pong")(lambda event: None)


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    finished = exporter.get_finished_spans()
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@pytest.mark.usefixtures("receivers")
@override_settings(DOMAIN_EVENTS=ON)
def test_a_trace_goes_from_the_request_through_publish_to_every_receiver(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("request"), transaction.atomic():
        event_id = publish(Pinged(n=1))

    named = by_name(spans)
    request = named["request"]
    ping = named["publish testapp.Pinged"]
    on_ping = named["process testapp.Pinged"]
    pong = named["publish testapp.Ponged"]
    on_pong = named["process testapp.Ponged"]
    assert parent_of(ping) == request.context.span_id
    assert parent_of(on_ping) == ping.context.span_id
    assert parent_of(pong) == on_ping.context.span_id
    assert parent_of(on_pong) == pong.context.span_id
    assert {span.context.trace_id for span in named.values()} == {request.context.trace_id}
    assert ping.kind is SpanKind.PRODUCER
    assert on_ping.kind is SpanKind.CONSUMER
    assert OutboxEvent.objects.get(pk=event_id).headers == {"traceparent": traceparent(ping)}
    # The receiver ran in the request's trace, so there is nothing to link.
    assert on_ping.links == ()


@pytest.mark.usefixtures("receivers")
@override_settings(DOMAIN_EVENTS=ON)
def test_spans_carry_messaging_and_correlation_attributes(
    spans: InMemorySpanExporter,
) -> None:
    ping_id = publish(Pinged(n=1), correlation_id="order-7")

    named = by_name(spans)
    pong_id = OutboxEvent.objects.get(event_type="testapp.Ponged").pk
    assert dict(named["publish testapp.Pinged"].attributes or {}) == {
        "messaging.system": "django_domain_events",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "testapp.Pinged",
        "messaging.message.id": str(ping_id),
        "messaging.message.conversation_id": "order-7",
        "domain_events.correlation_id": "order-7",
        "domain_events.causation_id": "",
    }
    on_pong = dict(named["process testapp.Ponged"].attributes or {})
    delivery_id = on_pong.pop("domain_events.delivery_id")
    assert on_pong == {
        "messaging.system": "django_domain_events",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "testapp.Ponged",
        "messaging.consumer.group.name": "unit_tracing.on_pong",
        "messaging.message.id": str(pong_id),
        "messaging.message.conversation_id": "order-7",
        "domain_events.correlation_id": "order-7",
        "domain_events.causation_id": str(ping_id),
        "domain_events.receiver": "unit_tracing.on_pong",
        "domain_events.dispatcher": "sync",
        "domain_events.attempt": 1,
    }
    assert delivery_id == str(Delivery.objects.get(receiver="unit_tracing.on_pong").pk)


@pytest.mark.usefixtures("receivers")
@override_settings(DOMAIN_EVENTS={**ON, "DISPATCHER": "deferred"})
def test_a_delivery_run_later_continues_the_trace_stored_with_its_event(
    spans: InMemorySpanExporter,
) -> None:
    with trace.get_tracer("tests").start_as_current_span("request"):
        publish(Pinged(n=2))
    publish_span = by_name(spans)["publish testapp.Pinged"]
    spans.clear()

    # Run from the outbox, as the relay or a worker would: its own span is linked, the context
    # stored in the event's row is the parent.
    with trace.get_tracer("tests").start_as_current_span("relay round"):
        drain()

    named = by_name(spans)
    on_ping = named["process testapp.Pinged"]
    assert parent_of(on_ping) == publish_span.context.span_id
    assert on_ping.context.trace_id == publish_span.context.trace_id
    assert [link.context.span_id for link in on_ping.links] == [
        named["relay round"].context.span_id
    ]
    assert (on_ping.attributes or {})["domain_events.dispatcher"] == "deferred"
    assert parent_of(named["process testapp.Ponged"]) == (
        named["publish testapp.Ponged"].context.span_id
    )


@pytest.mark.usefixtures("receivers")
@override_settings(DOMAIN_EVENTS=ON)
def test_a_failing_receiver_marks_its_span_as_an_error(spans: InMemorySpanExporter) -> None:
    publish(Pinged(n=-1))

    on_ping = by_name(spans)["process testapp.Pinged"]
    assert on_ping.status.status_code is StatusCode.ERROR
    assert [event.name for event in on_ping.events] == ["exception"]
    assert (on_ping.events[0].attributes or {})["exception.message"] == "negative ping"


@pytest.mark.usefixtures("receivers")
@override_settings(DOMAIN_EVENTS={**ON, "DISPATCHER": "deferred"})
def test_publish_many_is_one_span_with_the_batch_size(spans: InMemorySpanExporter) -> None:
    publish_many([Pinged(n=1), Ponged(n=2)])

    (span,) = spans.get_finished_spans()
    assert span.name == "publish"
    assert (span.attributes or {})["messaging.batch.message_count"] == 2
    assert "messaging.destination.name" not in (span.attributes or {})
    assert {row.headers["traceparent"] for row in OutboxEvent.objects.all()} == {traceparent(span)}


@pytest.mark.usefixtures("receivers")
def test_nothing_is_traced_or_stored_when_tracing_is_off(spans: InMemorySpanExporter) -> None:
    event_id = publish(Pinged(n=1))

    assert spans.get_finished_spans() == ()
    assert OutboxEvent.objects.get(pk=event_id).headers == {}


@override_settings(DOMAIN_EVENTS=ON)
def test_the_celery_task_continues_the_trace_stored_with_its_event(
    spans: InMemorySpanExporter, receiver_registry: Registry
) -> None:
    pytest.importorskip("celery")
    import django_domain_events.dispatchers.celery.tasks  # noqa: F401 - registers the task with every Celery app
    from django_domain_events.dispatchers.celery.dispatcher import TASK_NAME
    from tests.unit.test_celery import memory_app

    receiver("unit_tracing.queued", name="unit_tracing.queued", dispatcher="deferred")(
        lambda event: None
    )
    with trace.get_tracer("tests").start_as_current_span("request"):
        publish("unit_tracing.queued", {"n": 1})
    publish_span = by_name(spans)["publish unit_tracing.queued"]
    spans.clear()
    delivery = Delivery.objects.get()

    # The task run as a worker runs it, in a context of its own.
    assert memory_app.tasks[TASK_NAME].apply(args=(str(delivery.pk), "default")).get() == (
        "delivered"
    )

    (on_queued,) = spans.get_finished_spans()
    assert on_queued.name == "process unit_tracing.queued"
    assert parent_of(on_queued) == publish_span.context.span_id
    assert on_queued.context.trace_id == publish_span.context.trace_id


def run_task(delivery: Delivery) -> None:
    pytest.importorskip("celery")
    import django_domain_events.dispatchers.celery.tasks  # noqa: F401 - registers the task with every Celery app
    from django_domain_events.dispatchers.celery.dispatcher import TASK_NAME
    from tests.unit.test_celery import memory_app

    memory_app.tasks[TASK_NAME].apply(args=(str(delivery.pk), "default")).get()


RUNNERS = {
    "drain": lambda delivery: drain(),
    "relay": lambda delivery: Relay(grace=0).run_pass(),
    "celery task": run_task,
}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_delivery_run_from_the_outbox_reads_the_stored_context_with_its_event(
    spans: InMemorySpanExporter, receiver_registry: Registry, runner: str
) -> None:
    receiver("unit_tracing.later", name="unit_tracing.later", dispatcher="deferred")(
        lambda event: None
    )
    queries = {}
    for traced in (False, True):
        spans.clear()
        with override_settings(DOMAIN_EVENTS={"TRACING": traced}):
            with trace.get_tracer("tests").start_as_current_span("request"):
                event_id = publish("unit_tracing.later", {"traced": traced})
            delivery = Delivery.objects.get(event_id=event_id)
            with CaptureQueriesContext(connection) as captured:
                RUNNERS[runner](delivery)
            queries[traced] = len(captured)
        assert Delivery.objects.get(pk=delivery.pk).state == "delivered"

    # The headers come in the query that loads the event: tracing adds no query of its own.
    assert queries[True] == queries[False]
    named = by_name(spans)
    on_later = named["process unit_tracing.later"]
    assert parent_of(on_later) == named["publish unit_tracing.later"].context.span_id


class HeadersDroppingDispatcher(Dispatcher):
    """A project's own dispatcher that runs deliveries here, without the event's headers."""

    def dispatch(self, deliveries: Any) -> None:
        for owed in deliveries:
            run_delivery(replace(owed, headers=None))


@pytest.mark.usefixtures("receivers")
@override_settings(
    DOMAIN_EVENTS={**ON, "DISPATCHER": "tests.unit.test_tracing.HeadersDroppingDispatcher"}
)
def test_a_delivery_handed_over_without_headers_reads_them_from_the_outbox(
    spans: InMemorySpanExporter,
) -> None:
    with trace.get_tracer("tests").start_as_current_span("request"):
        publish(Pinged(n=3))

    named = by_name(spans)
    assert parent_of(named["process testapp.Pinged"]) == (
        named["publish testapp.Pinged"].context.span_id
    )


@pytest.mark.usefixtures("receivers")
@override_settings(DOMAIN_EVENTS=ON)
def test_an_unreadable_stored_context_starts_a_new_trace_and_the_receiver_still_runs(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(DOMAIN_EVENTS={**ON, "DISPATCHER": "deferred"}):
        event_id = publish(Pinged(n=4))
    OutboxEvent.objects.filter(pk=event_id).update(headers={"traceparent": 17})
    spans.clear()

    drain()

    on_ping = by_name(spans)["process testapp.Pinged"]
    assert on_ping.parent is None
    assert Delivery.objects.get(event_id=event_id).state == "delivered"
    assert "Unreadable trace context" in caplog.text
