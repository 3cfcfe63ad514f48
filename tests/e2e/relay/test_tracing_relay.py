"""Tracing across the hop to a real ``relay_events`` process: each receiver run the relay makes
continues the trace stored with its event, read in the query that loads the batch's events.

The relay, started with ``DOMAIN_EVENTS_TEST_SPANS_FILE``, writes its spans to that file
(``tests/tracing_sdk.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from django_domain_events import publish, use_dispatcher
from django_domain_events.declaration.registry import Registry
from tests.tracing_sdk import read_spans

from .conftest import Process
from .receivers import POISON, RECORD, RECORDED

pytestmark = [pytest.mark.server_db, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_relay_continues_the_trace_stored_with_each_event(
    start: Callable[..., Process],
    relay_receivers: Registry,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    with (
        override_settings(DOMAIN_EVENTS={"TRACING": True}),
        use_dispatcher("deferred"),
        trace.get_tracer("tests").start_as_current_span("request"),
    ):
        event_ids = [publish(RECORDED, {"n": n}) for n in range(2)]
    (request,) = [span for span in spans.get_finished_spans() if span.name == "request"]
    producers = {
        (span.attributes or {})["messaging.message.id"]: span
        for span in spans.get_finished_spans()
        if span.name == f"publish {RECORDED}"
    }
    assert sorted(producers) == sorted(str(event_id) for event_id in event_ids)
    spans_file = tmp_path / "relay-spans.jsonl"

    relay = start(
        "relay_events",
        "--once",
        settings={"RELAY_GRACE": 0, "TRACING": True},
        env={"DOMAIN_EVENTS_TEST_SPANS_FILE": str(spans_file)},
    )

    assert relay.wait() == 0, relay.output()
    consumers = [span for span in read_spans(spans_file) if span["kind"] == "CONSUMER"]
    assert sorted(
        (span["attributes"]["messaging.message.id"], span["attributes"]["domain_events.receiver"])
        for span in consumers
    ) == sorted((str(event_id), name) for event_id in event_ids for name in (POISON, RECORD))
    for span in consumers:
        producer = producers[span["attributes"]["messaging.message.id"]]
        assert span["pid"] != os.getpid()
        assert span["trace_id"] == request.context.trace_id
        assert span["parent_span_id"] == producer.context.span_id
        assert span["attributes"]["domain_events.dispatcher"] == "deferred"
