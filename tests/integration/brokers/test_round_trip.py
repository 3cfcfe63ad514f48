"""Both halves on a real broker, RabbitMQ and Redis Streams: an integration event published
here leaves through the outbox and a relay pass, and a consumer reading the broker's queue
records it in the inbox and runs its receiver once, whatever the broker redelivers.

The producer and the consumer share this process and its database, as two services would share
nothing but the broker: what crosses is the message on the wire.
"""

from __future__ import annotations

import gc
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import redis
from django.db import connections, transaction
from django.test import override_settings
from kombu import Connection, Exchange, Queue

from django_domain_events import Envelope, IntegrationEvent, consumer, publish
from django_domain_events.declaration.registry import registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.integration.consuming import Consumer
from django_domain_events.integration.inbox import InboxMessage
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.testing import disposable_event_classes
from django_domain_events.transports import RABBITMQ as RABBITMQ_BACKEND
from django_domain_events.transports import REDIS_STREAMS, Destination, transport_for
from tests.brokers import BROKERS, Broker
from tests.conftest import require_service
from tests.testapp.models import Effect

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

RABBITMQ = BROKERS["rabbitmq"]
REDIS = Broker(
    "redis",
    os.environ.get("DOMAIN_EVENTS_TEST_REDIS_STREAMS_URL", "redis://127.0.0.1:6379/13"),
    "service redis-server start",
)
CONSUMER = "billing.record_payment"


@dataclass
class Names:
    transport: str
    exchange: str
    queue: str
    event_type: str
    tag: str

    @property
    def stream_prefix(self) -> str:
        return f"dde-trip-{self.tag}:"


@pytest.fixture(params=["rabbitmq", "redis"])
def names(request: pytest.FixtureRequest) -> Iterator[Names]:
    """The broker's destination and queue of the test's own, deleted after it."""
    transport = request.param
    broker = RABBITMQ if transport == "rabbitmq" else REDIS
    require_service(broker.name, broker.host, broker.port, broker.how_to_start)
    tag = uuid.uuid4().hex[:12]
    made = Names(transport, f"dde-trip-{tag}", f"dde-trip-{tag}", f"trip_{tag}.PaymentSettled", tag)
    yield made
    if transport == "rabbitmq":
        with Connection(RABBITMQ.url) as connection:
            channel = connection.channel()
            channel.queue_delete(made.queue)
            channel.exchange_delete(made.exchange)
    else:
        client = redis.Redis.from_url(REDIS.url)
        keys = list(client.scan_iter(match=f"{made.stream_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def stack(names: Names) -> Iterator[ExitStack]:
    if names.transport == "rabbitmq":
        config = {"BACKEND": RABBITMQ_BACKEND, "URL": RABBITMQ.url}
    else:
        config = {
            "BACKEND": REDIS_STREAMS,
            "URL": REDIS.url,
            "OPTIONS": {"stream_prefix": names.stream_prefix, "check_persistence": False},
        }
    transports = {"default": config}
    with registry.isolated(), disposable_event_classes(), ExitStack() as entered:
        entered.enter_context(
            override_settings(DOMAIN_EVENTS={"TRANSPORTS": transports, "MAX_ATTEMPTS": 3})
        )
        entered.callback(transport_for("default").close)
        yield entered


def consume(names: Names, messages: int) -> Consumer:
    """Run a consumer of the test's queue until it has handled ``messages``."""
    running = Consumer(
        transport_for("default"),
        queue=names.queue,
        destinations=(Destination(names.exchange, names.event_type),),
        max_messages=messages,
    )

    # A thread, so that a consumer that never gets its messages fails the test instead of
    # hanging it.
    def run() -> None:
        try:
            running.run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():
        running.stop()
        thread.join(timeout=10)
        pytest.fail(f"The consumer did not get {messages} message(s): {running.totals}")
    # Django never closes an in-memory SQLite database (closing would drop it), so the thread's
    # connection is freed with the thread, which Python 3.13 reports as an unclosed database:
    # collected here, the report lands in this test, where the filter below expects it.
    del thread
    gc.collect()
    return running


def declare(names: Names) -> type[IntegrationEvent]:
    @dataclass(frozen=True)
    class PaymentSettled(IntegrationEvent):
        event_type = names.event_type
        destination = names.exchange

        order_id: int
        amount: str

    @consumer(PaymentSettled, name=CONSUMER)
    def record_payment(event: PaymentSettled, envelope: Envelope) -> None:
        Effect.record(CONSUMER, envelope)

    return PaymentSettled


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_published_event_is_consumed_once_through_the_inbox(
    names: Names, stack: ExitStack
) -> None:
    payment_settled = declare(names)
    # The consumer's queue is bound before anything is sent, as a service that subscribed
    # first would have it (a Redis consumer group created later reads the stream from its
    # start: nothing to bind beforehand).
    if names.transport == "rabbitmq":
        with Connection(RABBITMQ.url) as connection:
            exchange = Exchange(names.exchange, type="topic", durable=True)
            Queue(names.queue, exchange, routing_key=names.event_type, durable=True)(
                connection.channel()
            ).declare()

    with transaction.atomic():
        publish(payment_settled(order_id=7, amount="10.00"))
    assert Relay(grace=0).run_pass().delivered == 1
    # Sent twice, as when the broker's confirm was lost and the relay sent it again.
    event = OutboxEvent.objects.get()
    Delivery.objects.update(state=DeliveryState.FAILED, next_attempt_at=event.occurred_at)
    assert Relay(grace=0).run_pass().delivered == 1

    running = consume(names, messages=2)

    assert running.totals.outcomes.get("processed") == 1
    [row] = InboxMessage.objects.all()
    assert (row.receiver, row.outcome, row.event_id) == (CONSUMER, "processed", event.pk)
    assert list(Effect.objects.values_list("receiver", "event_id")) == [(CONSUMER, event.pk)]
