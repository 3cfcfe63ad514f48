"""Integration events on a real RabbitMQ: publish, commit, a relay pass, and the message is on
a queue bound to the exchange, confirmed, with its CloudEvents attributes; a broker that is
down or a message no queue takes leaves the delivery owed, with the reason.

Each test declares an exchange and a queue of its own and deletes them after it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from kombu import Connection, Exchange, Queue

from django_domain_events import IntegrationEvent, publish
from django_domain_events.declaration.registry import registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.exceptions import TransportError
from django_domain_events.integration.messages import Message, from_wire
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.testing import disposable_event_classes
from django_domain_events.transports import Destination, Received, transport_for
from tests.brokers import BROKERS
from tests.conftest import require_service
from tests.tcp_proxy import TCPProxy

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

RABBITMQ = BROKERS["rabbitmq"]
BACKEND = "django_domain_events.transports.rabbitmq.RabbitMQTransport"


@dataclass
class Names:
    exchange: str
    queue: str
    event_type: str


@pytest.fixture
def names() -> Iterator[Names]:
    """An exchange and a queue of the test's own, deleted after it."""
    require_service("RabbitMQ", RABBITMQ.host, RABBITMQ.port, RABBITMQ.how_to_start)
    tag = uuid.uuid4().hex[:12]
    made = Names(f"dde-test-{tag}", f"dde-test-{tag}", f"rabbit_{tag}.PaymentSettled")
    yield made
    with Connection(RABBITMQ.url) as connection:
        channel = connection.channel()
        channel.queue_delete(made.queue)
        channel.exchange_delete(made.exchange)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with registry.isolated(), disposable_event_classes(), ExitStack() as entered:
        yield entered


def configure(stack: ExitStack, url: str = RABBITMQ.url, **routes: Any) -> None:
    transports = {"default": {"BACKEND": BACKEND, "URL": url, "OPTIONS": {"connect_timeout": 2}}}
    stack.enter_context(
        override_settings(
            DOMAIN_EVENTS={"TRANSPORTS": transports, "INTEGRATION_SOURCE": "/shop", **routes}
        )
    )
    stack.callback(transport_for("default").close)


def bind_queue(names: Names) -> None:
    """Declare the test's queue bound to its exchange by the event type, as a consumer would."""
    with Connection(RABBITMQ.url) as connection:
        exchange = Exchange(names.exchange, type="topic", durable=True)
        Queue(names.queue, exchange, routing_key=names.event_type, durable=True)(
            connection.channel()
        ).declare()


def take(names: Names) -> Any:
    """The next message of the test's queue (None if it is empty), acknowledged."""
    with Connection(RABBITMQ.url) as connection:
        channel = connection.channel()
        channel.auto_decode = False
        found = channel.basic_get(names.queue, no_ack=True)
        return found


def declare_event(names: Names, routed: bool = True) -> type[IntegrationEvent]:
    @dataclass(frozen=True)
    class PaymentSettled(IntegrationEvent):
        event_type = names.event_type
        destination = names.exchange if routed else None

        order_id: int
        amount: str

    return PaymentSettled


def relay_pass() -> Any:
    return Relay(grace=0).run_pass()


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_a_published_event_reaches_a_bound_queue_as_a_confirmed_cloudevent(
    names: Names, stack: ExitStack, mode: str
) -> None:
    configure(
        stack,
        ROUTES={names.event_type: {"DESTINATION": names.exchange, "MODE": mode}},
    )
    payment_settled = declare_event(names, routed=False)
    bind_queue(names)

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
    assert take(names) is None  # nothing leaves before the relay sends it
    totals = relay_pass()

    assert totals.delivered == 1
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    raw = take(names)
    assert take(names) is None
    event = OutboxEvent.objects.get()
    assert raw.properties["delivery_mode"] == 2  # persistent
    headers = {**raw.headers, "content-type": raw.properties["content_type"]}
    message = from_wire(headers, raw.body)
    assert message.id == str(event.pk)
    assert message.type == names.event_type
    assert message.source == "/shop"
    assert message.time == event.occurred_at
    assert json.loads(message.data) == {"order_id": 7, "amount": "10.00"}
    assert message.extensions["correlationid"] == event.correlation_id
    expected = "application/json" if mode == "binary" else "application/cloudevents+json"
    assert raw.properties["content_type"] == expected
    if mode == "binary":
        assert raw.body == message.data
        assert raw.headers["ce_type"] == names.event_type


def test_a_rolled_back_publish_sends_nothing(names: Names, stack: ExitStack) -> None:
    configure(stack)
    payment_settled = declare_event(names)
    bind_queue(names)

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
        transaction.set_rollback(True)
    relay_pass()

    assert take(names) is None
    assert not Delivery.objects.exists()


def test_a_broker_down_at_commit_leaves_the_delivery_to_a_later_relay_pass(
    names: Names, stack: ExitStack
) -> None:
    proxy = TCPProxy(RABBITMQ.host, RABBITMQ.port)
    stack.callback(proxy.close)
    configure(stack, url=RABBITMQ.with_port(proxy.port))
    payment_settled = declare_event(names)
    bind_queue(names)
    proxy.cut()

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))  # the request succeeds
    assert relay_pass().failed == 1
    failed = Delivery.objects.get()
    assert failed.state == DeliveryState.FAILED
    assert "TransportError" in failed.last_error
    assert take(names) is None

    proxy.restore()
    # Its retry falls due (the backoff is not what this test waits for).
    Delivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert relay_pass().delivered == 1

    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert take(names) is not None


def test_an_unroutable_message_is_a_failed_delivery_saying_so(
    names: Names, stack: ExitStack
) -> None:
    configure(stack)
    payment_settled = declare_event(names)  # no queue is bound to its exchange

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
    relay_pass()

    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.FAILED
    assert "unroutable" in delivery.last_error
    assert "NO_ROUTE" in delivery.last_error
    assert names.exchange in delivery.last_error


def test_sends_reuse_one_pooled_connection(names: Names, stack: ExitStack) -> None:
    proxy = TCPProxy(RABBITMQ.host, RABBITMQ.port)
    stack.callback(proxy.close)
    configure(stack, url=RABBITMQ.with_port(proxy.port))
    bind_queue(names)
    transport = transport_for("default")
    destination = Destination(names.exchange, names.event_type)

    for number in range(5):
        transport.send(destination, [_message(str(number))])

    assert proxy.forwarded == 1
    assert [take(names) is not None for _ in range(5)] == [True] * 5


def test_consume_hands_over_each_message_and_redelivers_what_was_not_acked(
    names: Names, stack: ExitStack
) -> None:
    configure(stack)
    transport = transport_for("default")
    destination = Destination(names.exchange, names.event_type)
    stop = threading.Event()
    seen: list[tuple[str, bool]] = []

    def handle(received: Received) -> None:
        assert received.message is not None
        seen.append((received.message.id, received.redelivered))
        if len(seen) == 1:
            received.reject(requeue=True)  # handled elsewhere first: must come back
        else:
            received.ack()
            stop.set()

    # Binding the queue first makes the send routable; the consumer then drains it.
    bind_queue(names)
    transport.send(destination, [_message("only")])
    consumer = threading.Thread(
        target=transport.consume, args=([destination], names.queue, handle, stop)
    )
    consumer.start()
    consumer.join(timeout=60)
    stop.set()

    assert not consumer.is_alive()
    assert seen == [("only", False), ("only", True)]
    assert take(names) is None  # acknowledged: gone


def test_garbage_on_the_queue_reaches_the_consumer_with_its_error(
    names: Names, stack: ExitStack
) -> None:
    configure(stack)
    transport = transport_for("default")
    destination = Destination(names.exchange, names.event_type)
    bind_queue(names)
    with Connection(RABBITMQ.url) as connection:
        connection.Producer().publish(
            b"not a cloudevent",
            exchange=names.exchange,
            routing_key=names.event_type,
            content_type="text/plain",
            content_encoding="binary",
        )
    stop = threading.Event()
    got: list[Received] = []

    def handle(received: Received) -> None:
        got.append(received)
        received.reject(requeue=False)
        stop.set()

    transport.consume([destination], names.queue, handle, stop)

    [received] = got
    assert received.message is None
    assert received.error is not None
    assert "Not a CloudEvents message" in str(received.error)
    assert received.raw_body == b"not a cloudevent"


def test_a_transport_error_names_the_broker(stack: ExitStack) -> None:
    configure(stack, url="amqp://guest:guest@127.0.0.1:1//")

    with pytest.raises(TransportError, match=r"127\.0\.0\.1:1"):
        transport_for("default").send(Destination("x", "y"), [_message("1")])


def _message(message_id: str) -> Message:
    return Message(
        id=message_id, source="/test", type="t", time=dt.datetime.now(dt.UTC), data=b"{}"
    )


def test_a_broker_that_never_answers_is_a_transport_error_not_a_hang(stack: ExitStack) -> None:
    from tests.black_hole import BlackHole

    hole = BlackHole()
    stack.callback(hole.close)
    configure(stack, url=f"amqp://guest:guest@127.0.0.1:{hole.port}//")

    with pytest.raises(TransportError, match=f"127.0.0.1:{hole.port}"):
        transport_for("default").send(Destination("x", "y"), [_message("1")])
    assert hole.accepted == 1  # one attempt per send: the outbox's retries do the rest
