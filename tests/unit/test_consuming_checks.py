"""System checks of what a project consumes (E110 to W114)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import override_settings

from django_domain_events import IntegrationEvent
from django_domain_events.checks import check_consuming, check_integration_events
from django_domain_events.declaration.events import retire_event_class
from django_domain_events.declaration.registry import registry
from django_domain_events.integration.consumers import consumer

TRANSPORTS = {"default": {"BACKEND": "tests.in_process_transport.InProcessTransport"}}
CONSUME = {"QUEUE": "billing", "DESTINATIONS": [{"NAME": "payments", "ROUTING_KEY": "shop.#"}]}


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    with registry.isolated():
        yield


def ids(**configured: Any) -> list[str]:
    with override_settings(DOMAIN_EVENTS=configured):
        return [message.id for message in check_consuming()]


def test_a_complete_consuming_setup_passes() -> None:
    assert ids(TRANSPORTS=TRANSPORTS, CONSUME=CONSUME) == []


@pytest.mark.parametrize(
    "consume",
    [
        "billing",
        {"DESTINATIONS": CONSUME["DESTINATIONS"]},
        {"QUEUE": "billing", "DESTINATIONS": []},
        {"QUEUE": "billing", "DESTINATIONS": [{"NAME": "payments"}]},
        {**CONSUME, "ROUTING": "shop.#"},
    ],
)
def test_e110_a_malformed_consume(consume: Any) -> None:
    assert ids(TRANSPORTS=TRANSPORTS, CONSUME=consume) == ["django_domain_events.E110"]


def test_e111_consume_names_an_undeclared_transport() -> None:
    assert ids(CONSUME={**CONSUME, "TRANSPORT": "rabbit"}, TRANSPORTS=TRANSPORTS) == [
        "django_domain_events.E111"
    ]


def test_e112_an_unknown_types_policy_that_does_not_exist() -> None:
    assert ids(CONSUMER_UNKNOWN_TYPES="drop") == ["django_domain_events.E112"]


@pytest.mark.parametrize(
    "retention",
    [30, {"procesed": dt.timedelta(days=1)}, {"processed": 30}, {"dead": dt.timedelta(0)}],
)
def test_e113_a_bad_inbox_retention(retention: Any) -> None:
    assert ids(INBOX_RETENTION=retention) == ["django_domain_events.E113"]


def test_w114_consumers_without_a_subscription() -> None:
    @consumer("shop.PaymentSettled", name="billing.record")
    def record(event: Any) -> None: ...

    assert ids() == ["django_domain_events.W114"]
    assert ids(TRANSPORTS=TRANSPORTS, CONSUME=CONSUME) == []


def test_e012_leaves_consumers_of_integration_events_alone() -> None:
    @dataclass(frozen=True)
    class StockCounted(IntegrationEvent):
        event_type = "warehouse.StockCounted"
        skus: int

    try:
        consumer(StockCounted, name="billing.stock")(lambda event: None)
        with override_settings(DOMAIN_EVENTS={"DISPATCHER": "sync"}):
            assert check_integration_events() == []
    finally:
        retire_event_class(StockCounted)
