"""Tracing across the hop to a real ``celery worker`` (prefork) on Redis and on RabbitMQ: the
receiver spans the worker makes continue the trace of the request that published the event.

The test process records its spans in memory; the worker, started with
``DOMAIN_EVENTS_TEST_SPANS_FILE``, turns tracing on and writes its spans to that file
(``tests/tracing_sdk.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import transaction
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from django_domain_events import publish
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.brokers import Broker
from tests.processes import CeleryWorker, wait_until
from tests.testapp import receivers
from tests.tracing_sdk import read_spans

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    return tmp_path / "worker-spans.jsonl"


@pytest.fixture
def traced_worker(
    broker: Broker,
    queue: str,
    celery_app: Celery,
    transactional_db: None,
    tmp_path: Path,
    spans_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[CeleryWorker]:
    """A worker as the ``worker`` fixture's, with tracing on and its spans in ``spans_file``."""
    monkeypatch.setenv("DOMAIN_EVENTS_TEST_SPANS_FILE", str(spans_file))
    started = CeleryWorker(broker.url, queue, tmp_path)
    started.start(purge=True)
    try:
        yield started
    finally:
        started.stop()


def delivered(event_id: uuid.UUID) -> bool:
    rows = Delivery.objects.filter(event_id=event_id)
    return len(rows) == 2 and all(row.state == DeliveryState.DELIVERED for row in rows)


def consumer_spans(path: Path, count: int) -> list[dict[str, Any]]:
    """The consumer spans written to ``path`` once there are ``count``, else []."""
    found = [span for span in read_spans(path) if span["kind"] == "CONSUMER"]
    return found if len(found) >= count else []


def test_the_worker_continues_the_trace_of_the_request_that_published(
    traced_worker: CeleryWorker, queue: str, spans: InMemorySpanExporter, spans_file: Path
) -> None:
    traced = {"DISPATCHER": "sync", "CELERY_QUEUE": queue, "TRACING": True}
    with (
        override_settings(DOMAIN_EVENTS=traced),
        trace.get_tracer("tests").start_as_current_span("request"),
        transaction.atomic(),
    ):
        event_id = publish(receivers.RECORDED, {"order_id": 7})

    wait_until(lambda: delivered(event_id), "both deliveries", report=traced_worker.log)
    worker_spans = wait_until(
        lambda: consumer_spans(spans_file, 2), "the worker's spans", report=traced_worker.log
    )

    here = {span.name: span for span in spans.get_finished_spans()}
    request, producer = here["request"], here[f"publish {receivers.RECORDED}"]
    assert producer.parent is not None
    assert producer.parent.span_id == request.context.span_id
    assert producer.kind is SpanKind.PRODUCER
    # The context stored with the event is the producer span's.
    stored = OutboxEvent.objects.get(pk=event_id).headers["traceparent"]
    assert stored.split("-")[1:3] == [
        f"{producer.context.trace_id:032x}",
        f"{producer.context.span_id:016x}",
    ]
    consumers = sorted(worker_spans, key=lambda span: span["attributes"]["domain_events.receiver"])
    assert [(span["name"], span["kind"]) for span in consumers] == [
        (f"process {receivers.RECORDED}", "CONSUMER"),
        (f"process {receivers.RECORDED}", "CONSUMER"),
    ]
    assert [span["attributes"]["domain_events.receiver"] for span in consumers] == [
        "celery_tests.record",
        "celery_tests.record_async",
    ]
    for span in consumers:
        assert span["pid"] != os.getpid()  # made in the worker's pool
        assert span["trace_id"] == request.context.trace_id
        assert span["parent_span_id"] == producer.context.span_id
        assert span["attributes"]["domain_events.dispatcher"] == "celery"
        assert span["attributes"]["messaging.message.id"] == str(event_id)
        assert span["status"] == "UNSET"
