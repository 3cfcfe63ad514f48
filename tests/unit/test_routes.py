"""Routes of integration events to broker destinations: one delivery per route written in the
publishing transaction, sent by the relay as a CloudEvents message, checked at start-up.

The broker here is the in-memory transport: what these tests decide is the outbox's part
(rows, rollback, retries, checks); the real broker's is in tests/integration/brokers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_domain_events import DomainEvent, IntegrationEvent, publish
from django_domain_events.checks import check_routes
from django_domain_events.declaration.registry import registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.integration.messages import from_wire, to_structured
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.testing import disposable_event_classes, drain
from django_domain_events.transports import transport_for
from django_domain_events.transports.memory import InMemoryTransport

transactional = pytest.mark.django_db(transaction=True)

MEMORY = {"BACKEND": "django_domain_events.transports.memory.InMemoryTransport"}


@pytest.fixture
def isolated() -> Iterator[ExitStack]:
    """An empty registry and disposable event classes; settings entered on the stack leave
    before the classes are retired."""
    with registry.isolated(), disposable_event_classes(), ExitStack() as stack:
        yield stack


def configure(stack: ExitStack, **domain_events: Any) -> None:
    stack.enter_context(
        override_settings(DOMAIN_EVENTS={"TRANSPORTS": {"default": MEMORY}, **domain_events})
    )


def sent() -> InMemoryTransport:
    transport = transport_for("default")
    assert isinstance(transport, InMemoryTransport)
    return transport


def declare_payment_settled() -> type[IntegrationEvent]:
    @dataclass(frozen=True)
    class PaymentSettled(IntegrationEvent):
        event_type = "unit_routes.PaymentSettled"
        destination = "payments"
        ordering_key = "order_id"

        order_id: int
        amount: str

    return PaymentSettled


@transactional
def test_a_routed_event_gets_a_broker_delivery_in_the_publishing_transaction(
    isolated: ExitStack,
) -> None:
    configure(isolated, INTEGRATION_SOURCE="/shop")
    payment_settled = declare_payment_settled()

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
        delivery = Delivery.objects.get()
        # Written with the event, not after the commit.
        assert delivery.receiver == "broker:default:payments:unit_routes.PaymentSettled"
    assert delivery.dispatcher == "deferred"
    assert sent().sent == []

    totals = Relay(grace=0).run_pass()

    assert totals.delivered == 1
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    [(destination, message)] = sent().sent
    event = OutboxEvent.objects.get()
    assert (destination.name, destination.routing_key) == ("payments", event.event_type)
    assert destination.mode == "structured"
    assert message.id == str(event.pk)
    assert message.type == "unit_routes.PaymentSettled"
    assert message.source == "/shop"
    assert message.time == event.occurred_at
    assert json.loads(message.data) == event.payload == {"order_id": 7, "amount": "10.00"}
    assert message.extensions == {
        "dataversion": "1",
        "correlationid": event.correlation_id,
        "orderingkey": "7",
    }
    assert from_wire(*to_structured(message)) == message


@transactional
def test_a_rolled_back_publish_sends_nothing(isolated: ExitStack) -> None:
    configure(isolated)
    payment_settled = declare_payment_settled()

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
        transaction.set_rollback(True)
    Relay(grace=0).run_pass()

    assert not Delivery.objects.exists()
    assert sent().sent == []


@transactional
def test_routes_in_settings_send_each_match_once_per_route_with_their_options(
    isolated: ExitStack,
) -> None:
    configure(
        isolated,
        ROUTES={
            "unit_routes.*": {"DESTINATION": "everything", "MODE": "binary"},
            "unit_routes.PaymentSettled": [
                {"DESTINATION": "payments"},  # the class's own route: not a second one
                {"DESTINATION": "audit", "ROUTING_KEY": "audit.payments", "MAX_ATTEMPTS": 2},
            ],
        },
    )
    payment_settled = declare_payment_settled()

    with transaction.atomic():
        publish(payment_settled(order_id=1, amount="1.00"))
    Relay(grace=0).run_pass()

    receivers = sorted(Delivery.objects.values_list("receiver", flat=True))
    assert receivers == [
        "broker:default:audit:unit_routes.PaymentSettled",
        "broker:default:everything:unit_routes.PaymentSettled",
        "broker:default:payments:unit_routes.PaymentSettled",
    ]
    where = sorted((d.name, d.routing_key, d.mode) for d, _message in sent().sent)
    assert where == [
        ("audit", "audit.payments", "structured"),
        ("everything", "unit_routes.PaymentSettled", "binary"),
        ("payments", "unit_routes.PaymentSettled", "structured"),
    ]
    assert registry.get("broker:default:audit:unit_routes.PaymentSettled").max_attempts == 2  # type: ignore[union-attr]


@transactional
def test_a_failed_send_is_a_failed_delivery_retried_later(isolated: ExitStack) -> None:
    configure(
        isolated,
        TRANSPORTS={"default": {"BACKEND": "tests.unit.test_routes.RefusingTransport"}},
    )
    payment_settled = declare_payment_settled()

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
    totals = Relay(grace=0).run_pass()

    delivery = Delivery.objects.get()
    assert totals.failed == 1
    assert delivery.state == DeliveryState.FAILED
    assert "TransportError: the broker said no" in delivery.last_error
    assert delivery.next_attempt_at is not None


class RefusingTransport(InMemoryTransport):
    """A broker that refuses every message."""

    def send(self, destination: Any, messages: Any) -> None:
        from django_domain_events.exceptions import TransportError

        raise TransportError("the broker said no")


def test_routes_change_with_the_settings(isolated: ExitStack) -> None:
    payment_settled = declare_payment_settled()
    name = "broker:default:audit:unit_routes.PaymentSettled"

    with override_settings(
        DOMAIN_EVENTS={"ROUTES": {payment_settled.event_type: {"DESTINATION": "audit"}}}
    ):
        assert registry.get(name) is not None
    assert registry.get(name) is None
    assert registry.get("broker:default:payments:unit_routes.PaymentSettled") is not None


# Checks ------------------------------------------------------------------------------------------


def test_a_route_naming_an_unknown_transport_is_e101(isolated: ExitStack) -> None:
    declare_payment_settled()

    found = check_routes_with(isolated, TRANSPORTS={})

    assert [m.id for m in found] == ["django_domain_events.E101"]
    assert "PaymentSettled.destination" in found[0].msg
    assert "'default'" in found[0].msg


def check_routes_with(stack: ExitStack, **domain_events: Any) -> list[Any]:
    stack.enter_context(override_settings(DOMAIN_EVENTS=domain_events))
    return list(check_routes())


def test_a_route_for_a_domain_event_or_no_event_is_e102(isolated: ExitStack) -> None:
    @dataclass(frozen=True)
    class OrderPlaced(DomainEvent):
        event_type = "unit_routes.OrderPlaced"
        order_id: int

    found = check_routes_with(
        isolated,
        TRANSPORTS={"default": MEMORY},
        ROUTES={
            "unit_routes.OrderPlaced": {"DESTINATION": "orders"},
            "unit_routes.nothing": {"DESTINATION": "orders"},
        },
    )

    assert [m.id for m in found] == ["django_domain_events.E102"] * 2
    assert "OrderPlaced is a domain event" in found[0].msg
    assert "no event class declares it" in found[1].msg
    assert not any(r.name.startswith("broker:") for r in registry.all())


@pytest.mark.parametrize(
    ("routes", "says"),
    [
        ({"x.Y": "orders"}, "not a dict"),
        ({"x.Y": {}}, "DESTINATION None"),
        ({"x.Y": {"DESTINATION": "o", "MODE": "json"}}, "MODE 'json'"),
        ({"x.Y": {"DESTINATION": "o", "destination": "o"}}, "unknown key"),
        ({"x.Y": {"DESTINATION": "o", "MAX_ATTEMPTS": 0}}, "MAX_ATTEMPTS 0"),
    ],
)
def test_a_malformed_route_is_e100(isolated: ExitStack, routes: Any, says: str) -> None:
    found = check_routes_with(isolated, TRANSPORTS={"default": MEMORY}, ROUTES=routes)

    assert [m.id for m in found] == ["django_domain_events.E100"]
    assert says in found[0].msg


def test_a_transport_backend_that_cannot_be_imported_is_e103(isolated: ExitStack) -> None:
    found = check_routes_with(
        isolated, TRANSPORTS={"default": {"BACKEND": "no_such_package.Transport"}}
    )

    assert [m.id for m in found] == ["django_domain_events.E103"]
    assert "cannot be imported" in found[0].msg
    assert "[rabbitmq]" in found[0].hint


def test_a_wildcard_route_matching_no_integration_event_is_w104(isolated: ExitStack) -> None:
    found = check_routes_with(
        isolated, TRANSPORTS={"default": MEMORY}, ROUTES={"nobody.*": {"DESTINATION": "o"}}
    )

    assert [m.id for m in found] == ["django_domain_events.W104"]


def test_the_rabbitmq_transport_passes_the_checks_where_kombu_is_installed(
    isolated: ExitStack,
) -> None:
    declare_payment_settled()
    backend = "django_domain_events.transports.rabbitmq.RabbitMQTransport"

    assert check_routes_with(isolated, TRANSPORTS={"default": {"BACKEND": backend}}) == []


@transactional
def test_the_message_carries_the_trace_context_of_the_sending_span(
    isolated: ExitStack, spans: Any
) -> None:
    from opentelemetry import trace

    configure(isolated, TRACING=True)
    payment_settled = declare_payment_settled()
    with trace.get_tracer("tests").start_as_current_span("request"):
        publish(payment_settled(order_id=7, amount="10.00"))
    publish_span = next(span for span in spans.get_finished_spans() if "publish" in span.name)

    Relay(grace=0).run_pass()

    [(_destination, message)] = sent().sent
    sending = next(span for span in spans.get_finished_spans() if "process" in span.name)
    trace_id, span_id = message.extensions["traceparent"].split("-")[1:3]
    assert int(trace_id, 16) == publish_span.context.trace_id
    assert int(span_id, 16) == sending.context.span_id


def test_settings_that_are_no_dict_leave_the_routes_as_they_were_and_the_error_to_the_checks(
    isolated: ExitStack,
) -> None:
    declare_payment_settled()
    before = sorted(found.name for found in registry.all())

    with override_settings(DOMAIN_EVENTS=["not", "a", "dict"]):
        assert sorted(found.name for found in registry.all()) == before


class FlakyTransport(InMemoryTransport):
    """Refuses the first message it is given, then takes every one."""

    refused = False

    def send(self, destination: Any, messages: Any) -> None:
        from django_domain_events.exceptions import TransportError

        if not FlakyTransport.refused:
            FlakyTransport.refused = True
            raise TransportError("the broker is restarting")
        super().send(destination, messages)


@transactional
def test_one_keys_events_are_sent_in_publish_order_even_across_a_failed_send(
    isolated: ExitStack,
) -> None:
    FlakyTransport.refused = False
    configure(
        isolated, TRANSPORTS={"default": {"BACKEND": "tests.unit.test_routes.FlakyTransport"}}
    )
    payment_settled = declare_payment_settled()
    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="1.00"))
        publish(payment_settled(order_id=7, amount="2.00"))
        publish(payment_settled(order_id=8, amount="3.00"))

    Relay(grace=0).run_pass()
    # The first of key 7 failed: the second waits behind it; key 8 is not held up.
    assert [json.loads(m.data)["amount"] for _d, m in sent().sent] == ["3.00"]

    drain()

    amounts = [json.loads(m.data)["amount"] for _d, m in sent().sent]
    assert amounts == ["3.00", "1.00", "2.00"]


def declare_audit_entry() -> type[IntegrationEvent]:
    @dataclass(frozen=True)
    class AuditEntry(IntegrationEvent):
        event_type = "unit_routes.AuditEntry"
        destination = "audit"

        n: int

    return AuditEntry


@transactional
def test_unordered_sends_settle_in_one_commit(isolated: ExitStack) -> None:
    configure(isolated)
    audit_entry = declare_audit_entry()
    with transaction.atomic():
        for n in range(5):
            publish(audit_entry(n=n))

    with CaptureQueriesContext(connection) as queries:
        totals = Relay(grace=0).run_pass()

    assert totals.delivered == 5
    assert sorted(json.loads(m.data)["n"] for _d, m in sent().sent) == [0, 1, 2, 3, 4]
    marks = [
        query
        for query in queries.captured_queries
        if query["sql"].startswith("UPDATE") and f"'{DeliveryState.DELIVERED}'" in query["sql"]
    ]
    assert len(marks) == 1


@transactional
def test_a_refused_send_in_a_group_is_sent_again_alone_and_fails_alone(
    isolated: ExitStack,
) -> None:
    FlakyTransport.refused = False
    configure(
        isolated, TRANSPORTS={"default": {"BACKEND": "tests.unit.test_routes.FlakyTransport"}}
    )
    audit_entry = declare_audit_entry()
    with transaction.atomic():
        for n in range(4):
            publish(audit_entry(n=n))

    totals = Relay(grace=0).run_pass()

    # The group's first send was refused: rolled back, each was sent again on its own, and
    # every send after the refusal was taken. At least once: nothing is missing.
    assert (totals.delivered, totals.failed) == (4, 0)
    assert sorted({json.loads(m.data)["n"] for _d, m in sent().sent}) == [0, 1, 2, 3]
    assert set(Delivery.objects.values_list("state", "attempts")) == {(DeliveryState.DELIVERED, 1)}
