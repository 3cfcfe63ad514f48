"""CorrelationFilter: log records made inside a receiver carry the event's ids."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from django_domain_events import publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery
from django_domain_events.observability.log_filter import CorrelationFilter
from tests.testapp.events import Pinged

pytestmark = pytest.mark.django_db(transaction=True)

app_logger = logging.getLogger("tests.unit.log_filter")


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[list[logging.LogRecord]]:
    handler = Keep()
    handler.addFilter(CorrelationFilter())
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        app_logger.removeHandler(handler)


@pytest.fixture
def receivers(receiver_registry: Registry) -> None:
    @receiver(Pinged, name="unit_log_filter.first")
    def first(event: Pinged) -> None:
        app_logger.info("first got %d", event.n)
        if event.n == 1:
            publish(Pinged(n=2))


def test_records_inside_receivers_carry_correlation_and_causation(
    kept: list[logging.LogRecord], receivers: None
) -> None:
    app_logger.info("before")
    cause = publish(Pinged(n=1), correlation_id="checkout-42")

    before, first, second = kept
    assert (before.correlation_id, before.causation_id, before.event_id) == ("-", "-", "-")
    assert before.delivery_id == "-"
    assert first.getMessage() == "first got 1"
    assert (first.correlation_id, first.causation_id, first.event_id) == (
        "checkout-42",
        "-",
        str(cause),
    )
    assert first.delivery_id == str(Delivery.objects.get(event_id=cause).pk)
    assert second.getMessage() == "first got 2"
    assert second.correlation_id == "checkout-42"
    assert second.causation_id == str(cause)


def test_the_placeholder_is_configurable() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)

    assert CorrelationFilter(placeholder="").filter(record)
    assert record.correlation_id == ""
