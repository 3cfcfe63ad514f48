"""Wildcard receivers: ``@receiver("*")`` and ``@receiver("prefix.*")``, their deliveries, the
registry's lookup, and their system checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.test import override_settings

from django_domain_events import (
    DomainEvent,
    IntegrationEvent,
    NamedEvent,
    handles,
    publish,
    publish_many,
    receiver,
    receiver_class,
)
from django_domain_events.checks import (
    check_integration_events,
    check_receiver_limit,
    check_wildcard_receivers,
)
from django_domain_events.declaration.registry import Registry, pattern_matches
from django_domain_events.exceptions import EventDefinitionError, PayloadError
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.redelivery import replay_events
from django_domain_events.testing import disposable_event_classes, drain

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture
def classes() -> Iterator[tuple[type[DomainEvent], type[DomainEvent]]]:
    with disposable_event_classes():

        @dataclass(frozen=True)
        class InvoiceIssued(DomainEvent):
            event_type = "unit_billing.invoice_issued"

            invoice_id: int

        @dataclass(frozen=True)
        class ParcelSent(DomainEvent):
            event_type = "unit_shipping.parcel_sent"

            parcel_id: int

        yield InvoiceIssued, ParcelSent


def ids(of: str) -> list[str]:
    return [message.msg for message in check_wildcard_receivers() if message.id == of]


# Matching ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "billing.invoice_issued", True),
        ("*", "anything", True),
        ("billing.*", "billing.invoice_issued", True),
        ("billing.*", "billing.invoices.paid", True),
        ("billing.*", "billing", False),
        ("billing.*", "billingx.invoice", False),
        ("billing.*", "shop.billing.invoice", False),
        ("billing.invoices.*", "billing.invoices.paid", True),
        ("billing.invoices.*", "billing.invoice_issued", False),
        ("billing.invoice_issued", "billing.invoice_issued", True),
        ("billing.invoice_issued", "billing.invoice_issued2", False),
    ],
)
def test_a_pattern_matches_every_event_type_under_its_prefix(
    pattern: str, event_type: str, expected: bool
) -> None:
    assert pattern_matches(pattern, event_type) is expected


@pytest.mark.parametrize("pattern", ["billing*", "*.paid", "billing.*.paid", "**", ".*", "a.**"])
def test_other_uses_of_the_star_are_refused_at_once(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"a wildcard is '\*' \(every event\) or 'prefix\.\*'"):
        receiver(pattern)(print)


def test_publishing_an_event_type_with_a_star_is_refused_before_anything_is_written() -> None:
    with pytest.raises(PayloadError, match=r"'\*' is kept for wildcard receivers"):
        publish("unit_billing.*", {})


# The lookup ---------------------------------------------------------------------------------------


def test_receivers_of_a_type_mix_exact_and_wildcard_receivers_in_registration_order(
    receiver_registry: Registry,
) -> None:
    receiver("*", name="unit.w.everything")(print)
    receiver("unit_billing.invoice_issued", name="unit.w.exact")(print)
    receiver("unit_billing.*", name="unit.w.billing")(print)
    receiver("unit_shipping.*", name="unit.w.shipping")(print)

    def found(event_type: str) -> list[str]:
        return [r.name for r in receiver_registry.receivers_for(event_type)]

    assert found("unit_billing.invoice_issued") == [
        "unit.w.everything",
        "unit.w.exact",
        "unit.w.billing",
    ]
    # A type no receiver names: only wildcards, worked out on first use, then remembered.
    assert found("unit_billing.invoices.paid") == ["unit.w.everything", "unit.w.billing"]
    assert found("unit_billing.invoices.paid") == ["unit.w.everything", "unit.w.billing"]
    assert found("unit_other.thing") == ["unit.w.everything"]


def test_a_registration_forgets_what_was_worked_out(receiver_registry: Registry) -> None:
    receiver("unit_billing.*", name="unit.w.billing")(print)
    assert [r.name for r in receiver_registry.receivers_for("unit_billing.new")] == [
        "unit.w.billing"
    ]

    receiver("*", name="unit.w.late")(print)

    assert [r.name for r in receiver_registry.receivers_for("unit_billing.new")] == [
        "unit.w.billing",
        "unit.w.late",
    ]


def test_without_wildcards_an_unknown_type_has_no_receivers(receiver_registry: Registry) -> None:
    receiver("unit_billing.invoice_issued", name="unit.w.exact")(print)

    assert receiver_registry.receivers_for("unit_billing.other") == ()


# Deliveries ---------------------------------------------------------------------------------------


@transactional
def test_a_wildcard_receiver_gets_typed_and_named_events_as_ordinary_deliveries(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    invoice_issued, parcel_sent = classes
    everything: list[object] = []
    billing: list[object] = []
    receiver("*", name="unit.w.audit")(everything.append)
    receiver("unit_billing.*", name="unit.w.billing")(billing.append)

    with transaction.atomic():
        publish(invoice_issued(invoice_id=1))
        publish(parcel_sent(parcel_id=2))
        publish("unit_billing.invoices.paid", {"invoice_id": 1})
        pending = sorted(Delivery.objects.values_list("receiver", flat=True))

    assert pending == [
        "unit.w.audit",
        "unit.w.audit",
        "unit.w.audit",
        "unit.w.billing",
        "unit.w.billing",
    ]
    assert everything == [
        invoice_issued(invoice_id=1),
        parcel_sent(parcel_id=2),
        NamedEvent("unit_billing.invoices.paid", {"invoice_id": 1}),
    ]
    assert billing == [
        invoice_issued(invoice_id=1),
        NamedEvent("unit_billing.invoices.paid", {"invoice_id": 1}),
    ]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@pytest.mark.django_db
def test_publish_many_gives_a_wildcard_receiver_one_delivery_per_event(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    invoice_issued, _ = classes
    receiver("unit_billing.*", name="unit.w.billing")(print)
    receiver(invoice_issued, name="unit.w.exact")(print)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        event_ids = publish_many([invoice_issued(invoice_id=n) for n in range(3)])

    rows = sorted(Delivery.objects.values_list("event_id", "receiver"))
    assert rows == sorted(
        (event_id, name) for event_id in event_ids for name in ("unit.w.billing", "unit.w.exact")
    )


@pytest.mark.django_db
def test_a_wildcard_receivers_own_dispatcher_and_ordering_apply(
    receiver_registry: Registry,
) -> None:
    receiver("unit_billing.*", name="unit.w.ordered", dispatcher="deferred", ordered=True)(print)

    publish(NamedEvent("unit_billing.paid", {"n": 1}, ordering_key="invoice-1"))

    delivery = Delivery.objects.get()
    assert (delivery.dispatcher, delivery.ordering_key) == ("deferred", "invoice-1")


@pytest.mark.django_db
def test_replay_reaches_wildcard_receivers(receiver_registry: Registry) -> None:
    receiver("unit_billing.*", name="unit.w.billing", dispatcher="deferred")(print)
    receiver("unit_shipping.*", name="unit.w.shipping", dispatcher="deferred")(print)
    publish("unit_billing.paid", {"n": 1})
    Delivery.objects.all().delete()

    replay_events(OutboxEvent.objects.all(), list(receiver_registry.all()))

    assert list(Delivery.objects.values_list("receiver", flat=True)) == ["unit.w.billing"]


# Checks -------------------------------------------------------------------------------------------


def test_a_prefix_that_matches_nothing_declared_is_a_warning(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    receiver("unit_biling.*", name="unit.w.typo")(print)
    receiver("unit_billing.*", name="unit.w.fine")(print)
    receiver("unit_named.*", name="unit.w.named")(print)
    receiver("unit_named.thing", name="unit.w.named_exact")(print)
    receiver("*", name="unit.w.everything")(print)

    [warning] = ids("django_domain_events.W030")

    assert warning.startswith(
        "Wildcard receiver 'unit.w.typo' listens to 'unit_biling.*', which matches"
    )


def test_one_function_through_a_wildcard_and_by_name_is_an_error(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    invoice_issued, _ = classes

    def audit(event: object) -> None: ...

    receiver("unit_billing.*", name="unit.w.audit_all")(audit)
    receiver(invoice_issued, name="unit.w.audit_invoices")(audit)
    receiver("unit_shipping.*", name="unit.w.other")(print)

    [error] = ids("django_domain_events.E030")

    assert "receives 'unit_billing.invoice_issued' twice" in error
    assert "'unit.w.audit_all'" in error
    assert "'unit.w.audit_invoices'" in error


def test_a_typed_wildcard_receiver_must_accept_every_matched_event(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    invoice_issued, _ = classes

    def narrow(event: object) -> None: ...

    # A local class cannot be named in a postponed annotation; a module-level one can.
    narrow.__annotations__ = {"event": invoice_issued, "return": None}

    def wide(event: DomainEvent | NamedEvent) -> None: ...

    def untyped(event) -> None:  # type: ignore[no-untyped-def]
        ...

    receiver("*", name="unit.w.narrow")(narrow)
    receiver("*", name="unit.w.wide")(wide)
    receiver("*", name="unit.w.untyped")(untyped)
    receiver("unit_billing.*", name="unit.w.billing_narrow")(narrow)
    receiver("unit_named.thing", name="unit.w.named_exact")(print)

    errors = ids("django_domain_events.E031")

    [everything] = [msg for msg in errors if "'unit.w.narrow'" in msg]
    assert "unit_shipping.parcel_sent (ParcelSent)" in everything
    assert "unit_named.thing (NamedEvent)" in everything
    assert "unit_billing.invoice_issued" not in everything
    assert len(errors) == 1  # billing_narrow matches only InvoiceIssued: fine


def test_a_wildcard_matching_an_integration_event_on_the_sync_dispatcher_is_e012(
    receiver_registry: Registry,
) -> None:
    with disposable_event_classes():

        @dataclass(frozen=True)
        class OrderExported(IntegrationEvent):
            event_type = "unit_exports.order_exported"

            order_id: int

        receiver("unit_exports.*", name="unit.w.exports")(print)
        receiver("unit_exports.*", name="unit.w.exports_deferred", dispatcher="deferred")(print)

        errors = [e for e in check_integration_events() if e.id == "django_domain_events.E012"]

    [error] = errors
    assert error.msg.startswith(
        "Receiver 'unit.w.exports' of 'unit_exports.*', which matches the integration events "
        "unit_exports.order_exported, would run in the publishing process"
    )


def test_the_receiver_limit_counts_wildcard_receivers(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    receiver("unit_billing.invoice_issued", name="unit.w.a")(print)
    receiver("unit_billing.*", name="unit.w.b")(print)

    @receiver_class
    class Audit:
        @handles("*", name="unit.w.c")
        def everything(self, event: object) -> None: ...

    with override_settings(DOMAIN_EVENTS={"MAX_RECEIVERS_PER_EVENT": 2}):
        [error] = check_receiver_limit()

    assert error.msg == (
        "Event type 'unit_billing.invoice_issued' has 3 receivers, more than "
        "DOMAIN_EVENTS['MAX_RECEIVERS_PER_EVENT'] = 2: unit.w.a, unit.w.b, unit.w.c."
    )


def test_an_event_class_with_a_star_in_its_event_type_is_refused() -> None:
    with (
        disposable_event_classes(),
        pytest.raises(EventDefinitionError, match=r"'\*' is kept for wildcard receivers"),
    ):

        class Starred(DomainEvent):
            event_type = "unit_billing.*"


@transactional
def test_a_wildcard_delivery_loaded_from_the_outbox_reaches_its_receiver(
    receiver_registry: Registry, classes: tuple[type[DomainEvent], type[DomainEvent]]
) -> None:
    invoice_issued, _ = classes
    got: list[object] = []
    receiver("unit_billing.*", name="unit.w.later", dispatcher="deferred")(got.append)

    publish(invoice_issued(invoice_id=5))
    publish("unit_billing.invoices.paid", {"invoice_id": 5})
    assert got == []
    drain()

    assert got == [
        invoice_issued(invoice_id=5),
        NamedEvent("unit_billing.invoices.paid", {"invoice_id": 5}),
    ]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
