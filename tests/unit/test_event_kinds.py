"""Domain events and integration events: the kind declared on the event class, and what it
changes for receivers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from django_domain_events import (
    DomainEvent,
    EventDefinitionError,
    IntegrationEvent,
    publish,
    receiver,
    use_dispatcher,
)
from django_domain_events.checks import check_integration_events
from django_domain_events.declaration.events import event_classes
from django_domain_events.declaration.registry import Registry
from django_domain_events.testing import drain

transactional = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class InvoiceIssued(DomainEvent):
    event_type = "unit_kinds.invoice_issued"

    invoice_id: int
    amount: Decimal


@dataclass(frozen=True)
class InvoiceExported(IntegrationEvent):
    event_type = "unit_kinds.invoice_exported"

    invoice_id: int
    amount: Decimal


@dataclass(frozen=True)
class StockSynced(DomainEvent):
    """Declared with the attribute rather than the base class."""

    event_type = "unit_kinds.stock_synced"
    event_kind = "integration"

    sku: str


def e012(about: str) -> list[Any]:
    return [
        error
        for error in check_integration_events()
        if error.id == "django_domain_events.E012" and about in error.msg
    ]


def test_the_kind_is_a_class_attribute_domain_by_default() -> None:
    assert InvoiceIssued.event_kind == "domain"
    assert InvoiceExported.event_kind == "integration"
    assert StockSynced.event_kind == "integration"
    assert issubclass(InvoiceExported, DomainEvent)
    # The base class itself is abstract: never published, no event type of its own to check.
    assert IntegrationEvent not in set(event_classes())


@pytest.mark.usefixtures("disposable_classes")
def test_an_unknown_kind_fails_when_the_class_is_defined() -> None:
    with pytest.raises(EventDefinitionError, match=r"event_kind must be 'domain' or 'integ"):

        @dataclass(frozen=True)
        class Odd(DomainEvent):
            event_type = "unit_kinds.odd"
            event_kind = "external"  # type: ignore[assignment]


@transactional
def test_integration_receivers_get_the_event_decoded_from_the_outbox_domain_ones_the_object(
    receiver_registry: Registry,
) -> None:
    got: list[DomainEvent] = []
    receiver(InvoiceIssued, name="unit.kinds.issued")(got.append)
    receiver(InvoiceExported, name="unit.kinds.exported", dispatcher="deferred")(got.append)
    issued = InvoiceIssued(invoice_id=1, amount=Decimal("10.50"))
    exported = InvoiceExported(invoice_id=1, amount=Decimal("10.50"))

    # Even run in this process right after commit, the integration event is read back.
    with use_dispatcher("sync"):
        publish(issued)
        publish(exported)

    assert got == [issued, exported]
    assert got[0] is issued
    assert got[1] is not exported


@transactional
def test_integration_receivers_on_a_transport_run_from_the_stored_row(
    receiver_registry: Registry,
) -> None:
    got: list[DomainEvent] = []
    receiver(InvoiceExported, name="unit.kinds.exported", dispatcher="deferred")(got.append)

    publish(InvoiceExported(invoice_id=2, amount=Decimal("3.00")))
    assert got == []
    drain()

    assert got == [InvoiceExported(invoice_id=2, amount=Decimal("3.00"))]


def test_a_receiver_of_an_integration_event_on_sync_is_a_check_error(
    receiver_registry: Registry,
) -> None:
    receiver(InvoiceExported, name="unit.kinds.default_dispatcher")(print)
    receiver(StockSynced.event_type, name="unit.kinds.named_sync", dispatcher="sync")(print)
    receiver(InvoiceExported, name="unit.kinds.deferred", dispatcher="deferred")(print)
    receiver(InvoiceExported, name="unit.kinds.celery", dispatcher="celery")(print)
    receiver(InvoiceIssued, name="unit.kinds.domain_on_sync", dispatcher="sync")(print)

    errors = check_integration_events()

    assert sorted(error.msg for error in errors) == [
        "Receiver 'unit.kinds.default_dispatcher' of the integration event InvoiceExported "
        "would run in the publishing process: its dispatcher is 'sync' "
        '(DOMAIN_EVENTS["DISPATCHER"]).',
        "Receiver 'unit.kinds.named_sync' of the integration event StockSynced would run in "
        "the publishing process: its dispatcher is 'sync' (its own).",
    ]
    assert all(error.id == "django_domain_events.E012" and error.hint for error in errors)


def test_a_transport_as_the_project_default_satisfies_the_check(
    receiver_registry: Registry,
) -> None:
    receiver(InvoiceExported, name="unit.kinds.default_dispatcher")(print)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        assert e012("unit.kinds.default_dispatcher") == []
    assert len(e012("unit.kinds.default_dispatcher")) == 1
