"""Consumed messages in metrics and traces: a counter by outcome, and a consumer span that
continues the trace of the message's ``traceparent``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client import CollectorRegistry

from django_domain_events.declaration.registry import Registry
from django_domain_events.integration.consumers import consumer
from django_domain_events.integration.consuming import Consumer
from django_domain_events.integration.messages import Message
from django_domain_events.observability import metrics as metrics_module
from django_domain_events.transports.base import Destination
from tests import in_process_transport
from tests.in_process_transport import InProcessTransport

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.django_db(transaction=True)

PAYMENTS = Destination("payments", "unit_observed.#")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def broker() -> Iterator[None]:
    in_process_transport.reset()
    in_process_transport.broker.bind("billing", [PAYMENTS])
    yield
    in_process_transport.reset()


def message(type: str = "unit_observed.settled", **extensions: str) -> Message:
    return Message(
        id=str(uuid.uuid4()),
        source="//shop",
        type=type,
        time=timezone.now(),
        data=json.dumps({"payment_id": 1}).encode(),
        extensions=extensions,
    )


def consume() -> None:
    Consumer(InProcessTransport(), queue="billing", destinations=(PAYMENTS,)).run()


@override_settings(DOMAIN_EVENTS={"METRICS": True})
def test_consumed_messages_are_counted_by_outcome(receiver_registry: Registry) -> None:
    consumer("unit_observed.settled", name="billing.ok")(lambda event: None)
    sent = message()
    InProcessTransport().send(PAYMENTS, [sent, sent, message(type="unit_observed.unknown")])

    with metrics_module.use_registry(CollectorRegistry()) as registry:
        consume()

        def count(outcome: str) -> Any:
            return registry.get_sample_value("domain_events_consumed_total", {"outcome": outcome})

        assert (count("processed"), count("duplicate"), count("unknown_type")) == (1, 1, 1)


@override_settings(DOMAIN_EVENTS={"TRACING": True})
def test_a_consumer_run_continues_the_trace_of_the_message(
    receiver_registry: Registry, spans: InMemorySpanExporter
) -> None:
    consumer("unit_observed.settled", name="billing.ok")(lambda event: None)
    InProcessTransport().send(PAYMENTS, [message(traceparent=TRACEPARENT)])

    consume()

    [span] = spans.get_finished_spans()
    assert span.name == "process unit_observed.settled"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert span.attributes["domain_events.receiver"] == "billing.ok"
