"""The OpenTelemetry SDK as the tracing tests set it up.

In the test process, finished spans are kept in memory (``recorded_spans()``, through the
``spans`` fixture). A process a test starts (a Celery worker, the relay) with
``DOMAIN_EVENTS_TEST_SPANS_FILE`` in its environment turns tracing on and appends its finished
spans to that file as JSON lines (``tests/settings.py`` calls ``export_spans_to()``), for the
test to read with ``read_spans()``. OpenTelemetry lets a process set its provider only once, so
each process has one of the two.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_memory = InMemorySpanExporter()
_memory_provider = TracerProvider()
_memory_provider.add_span_processor(SimpleSpanProcessor(_memory))


def recorded_spans() -> InMemorySpanExporter:
    """The in-memory exporter of this process's SDK, emptied; the SDK is set up on first use."""
    if trace.get_tracer_provider() is not _memory_provider:
        trace.set_tracer_provider(_memory_provider)
        if trace.get_tracer_provider() is not _memory_provider:
            raise RuntimeError("Another tracer provider was set in this test process first.")
    _memory.clear()
    return _memory


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file, one JSON object a line, with the process id."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_as_dict(span)) + "\n" for span in spans]
        # One write per batch in append mode: the prefork pool's processes share the file.
        with open(self.path, "a") as out:
            out.write("".join(lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": context.trace_id if context else None,
        "span_id": context.span_id if context else None,
        "parent_span_id": span.parent.span_id if span.parent else None,
        "links": [link.context.span_id for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "pid": os.getpid(),
    }


def export_spans_to(path: str) -> None:
    """Set up this process's SDK to append its finished spans to ``path``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    trace.set_tracer_provider(provider)


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans appended to ``path`` so far (none if the file is not there yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
