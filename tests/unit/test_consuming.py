"""Consuming integration events through the inbox: exactly-once effects from at-least-once
delivery, failures, unknown types and malformed messages, retry and pruning."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_domain_events import Envelope, GiveUp, IntegrationEvent, NamedEvent
from django_domain_events.declaration.registry import registry
from django_domain_events.exceptions import TransportConfigurationError, TransportError
from django_domain_events.integration import consuming
from django_domain_events.integration.consumers import consumer
from django_domain_events.integration.consuming import Consumer, ConsumerStopped
from django_domain_events.integration.inbox import InboxMessage, InboxOutcome
from django_domain_events.integration.messages import Message
from django_domain_events.transports.base import Destination
from tests import in_process_transport
from tests.in_process_transport import InProcessTransport
from tests.testapp.models import Effect

transactional = pytest.mark.django_db(transaction=True)

PAYMENTS = Destination("payments", "shop.#")
QUEUE = "billing"
TRANSPORTS = {"default": {"BACKEND": "tests.in_process_transport.InProcessTransport"}}
CONSUME = {
    "TRANSPORT": "default",
    "QUEUE": QUEUE,
    "DESTINATIONS": [{"NAME": "payments", "ROUTING_KEY": "shop.#"}],
}


@dataclass(frozen=True)
class PaymentSettled(IntegrationEvent):
    event_type = "shop.PaymentSettled"
    version = 2

    payment_id: int
    amount_cents: int

    @classmethod
    def upcast(cls, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
        # Version 1 sent the amount in whole units.
        return {"payment_id": payload["payment_id"], "amount_cents": payload["amount"] * 100}


received: list[Any] = []


@pytest.fixture(autouse=True)
def consumers() -> Iterator[None]:
    in_process_transport.reset()
    received.clear()
    with (
        registry.isolated(),
        override_settings(
            DOMAIN_EVENTS={"DISPATCHER": "sync", "TRANSPORTS": TRANSPORTS, "CONSUME": CONSUME}
        ),
    ):
        in_process_transport.broker.bind(QUEUE, [PAYMENTS])
        yield
    in_process_transport.reset()


def message(
    payment_id: int = 7,
    *,
    message_id: str | None = None,
    type: str = "shop.PaymentSettled",
    version: int = 2,
    data: dict[str, Any] | None = None,
) -> Message:
    return Message(
        id=message_id or str(uuid.uuid4()),
        source="//shop.example.com",
        type=type,
        time=timezone.now(),
        data=json.dumps(data or {"payment_id": payment_id, "amount_cents": 1250}).encode(),
        extensions={"dataversion": str(version), "correlationid": "corr-1"},
    )


def send(*messages: Message) -> None:
    InProcessTransport().send(PAYMENTS, messages)


def consume(transport: InProcessTransport | None = None, **kwargs: Any) -> Consumer:
    running = Consumer(
        transport or InProcessTransport(), queue=QUEUE, destinations=(PAYMENTS,), **kwargs
    )
    running.run()
    return running


def declare_recording(name: str = "billing.record") -> None:
    @consumer(PaymentSettled, name=name)
    def record(event: PaymentSettled, envelope: Envelope) -> None:
        received.append(event)
        Effect.record(name, envelope)


def effects(name: str = "billing.record") -> int:
    return Effect.objects.filter(receiver=name).count()


@transactional
def test_a_message_runs_its_consumer_in_one_transaction_with_its_inbox_row() -> None:
    declare_recording()
    sent = message()
    send(sent)

    running = consume()

    assert received == [PaymentSettled(payment_id=7, amount_cents=1250)]
    assert effects() == 1
    row = InboxMessage.objects.get()
    assert (row.message_id, row.receiver, row.outcome) == (
        sent.id,
        "billing.record",
        InboxOutcome.PROCESSED,
    )
    assert row.event_id == uuid.UUID(sent.id)
    assert row.correlation_id == "corr-1"
    assert row.raw_body is None, "a processed row keeps no copy of the message"
    assert running.totals.outcomes == {"processed": 1}


@transactional
def test_a_duplicated_message_has_one_effect() -> None:
    declare_recording()
    sent = message()
    send(sent, sent)
    transport = InProcessTransport()

    running = consume(transport)

    assert effects() == 1
    assert InboxMessage.objects.count() == 1
    assert len(transport.acked) == 2, "the copy is acknowledged too, so it is not kept"
    assert running.totals.outcomes == {"processed": 1, "duplicate": 1}


@transactional
def test_a_message_redelivered_after_its_effects_committed_unacked_has_no_second_effect() -> None:
    declare_recording()
    send(message())

    # The ack is lost: the broker still holds the message, and gives it again.
    consume(InProcessTransport(lose_acks=1), max_messages=1)
    assert effects() == 1
    assert in_process_transport.broker.waiting(QUEUE) == 1
    again = InProcessTransport()
    consume(again)

    assert effects() == 1
    assert [copy.redelivered for copy in again.acked] == [True]
    assert in_process_transport.broker.waiting(QUEUE) == 0


@transactional
def test_a_failing_consumer_is_rolled_back_while_the_others_keep_their_effects() -> None:
    declare_recording()
    calls = []

    @consumer(PaymentSettled, name="billing.flaky", max_attempts=2)
    def flaky(event: PaymentSettled, envelope: Envelope) -> None:
        calls.append(envelope.attempt)
        Effect.record("billing.flaky", envelope)
        raise RuntimeError("ledger unavailable")

    sent = message()
    send(sent)
    transport = InProcessTransport()

    consume(transport, max_messages=1)

    assert effects() == 1
    assert effects("billing.flaky") == 0, "its effect rolled back"
    failed = InboxMessage.objects.get(receiver="billing.flaky")
    assert (failed.outcome, failed.attempts) == (InboxOutcome.FAILED, 1)
    assert "RuntimeError: ledger unavailable" in failed.last_error
    assert json.loads(bytes(failed.raw_body)) == json.loads(sent.data)
    assert len(transport.rejected) == 1, "given back to the broker for another attempt"

    consume(transport)

    assert calls == [1, 2]
    assert effects() == 1, "the receiver that processed it does not run again"
    failed.refresh_from_db()
    assert (failed.outcome, failed.attempts) == (InboxOutcome.DEAD, 2)
    assert in_process_transport.broker.waiting(QUEUE) == 0, "acknowledged once dead"


@transactional
def test_a_consumer_that_gives_up_is_dead_at_once() -> None:
    @consumer(PaymentSettled, name="billing.refuses")
    def refuses(event: PaymentSettled) -> None:
        raise GiveUp("unknown account")

    send(message())
    transport = InProcessTransport()

    consume(transport)

    row = InboxMessage.objects.get()
    assert (row.outcome, row.attempts) == (InboxOutcome.DEAD, 1)
    assert len(transport.acked) == 1


@transactional
def test_an_older_version_is_upcast_and_a_named_type_arrives_as_a_named_event() -> None:
    declare_recording()

    @consumer("shop.RefundIssued", name="billing.refunds")
    def refunds(event: NamedEvent) -> None:
        received.append(event)

    send(
        message(version=1, data={"payment_id": 3, "amount": 4}),
        message(type="shop.RefundIssued", data={"refund_id": 9}, version=1),
    )

    consume()

    assert received == [
        PaymentSettled(payment_id=3, amount_cents=400),
        NamedEvent("shop.RefundIssued", {"refund_id": 9}),
    ]


@transactional
def test_a_message_that_cannot_be_decoded_is_dead_at_once_and_the_consumer_goes_on() -> None:
    declare_recording()
    # Version 1 without the field its upcast() reads; then a newer version than the class.
    send(
        message(version=1, data={"payment_id": 3}),
        message(version=3),
        message(4),
    )

    running = consume()

    dead = InboxMessage.objects.filter(outcome=InboxOutcome.DEAD)
    assert sorted(row.last_error.split(":")[0] for row in dead) == ["EventDecodeError", "KeyError"]
    assert effects() == 1
    assert running.failure is None


@transactional
def test_a_consumer_that_cannot_record_an_outcome_stops_and_gives_the_message_back() -> None:
    declare_recording()
    send(message(), message())
    transport = InProcessTransport()

    # A database alias that does not exist: every write of the inbox fails.
    with pytest.raises(ConsumerStopped, match="went back"):
        Consumer(transport, queue=QUEUE, destinations=(PAYMENTS,), using="nowhere").run()

    assert len(transport.rejected) == 1
    assert in_process_transport.broker.waiting(QUEUE) == 2, "nothing lost, nothing looped"


class LosesTheBroker(InProcessTransport):
    """Its first ``failures`` connections fail as a broker going away would."""

    def __init__(self, failures: int, error: type[TransportError] = TransportError) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    def consume(self, *args: Any, **kwargs: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error("Connection reset by peer")
        super().consume(*args, **kwargs)


@transactional
def test_a_consumer_that_loses_the_broker_connects_again_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consuming, "RECONNECT_DELAY", 0.0)
    declare_recording()
    send(message())

    running = consume(LosesTheBroker(failures=2))

    assert running.reconnects == 2
    assert running.totals.outcomes == {"processed": 1}
    assert effects() == 1


@transactional
def test_a_transport_misconfigured_stops_the_consumer_instead_of_reconnecting() -> None:
    declare_recording()

    with pytest.raises(TransportConfigurationError):
        consume(LosesTheBroker(failures=1, error=TransportConfigurationError))


@transactional
def test_an_unknown_type_is_recorded_and_acknowledged() -> None:
    sent = message(type="shop.CartAbandoned")
    send(sent)
    transport = InProcessTransport()

    consume(transport)

    row = InboxMessage.objects.get()
    assert (row.outcome, row.receiver, row.event_type) == (
        InboxOutcome.UNKNOWN_TYPE,
        "",
        "shop.CartAbandoned",
    )
    assert bytes(row.raw_body) == sent.data
    assert len(transport.acked) == 1
    assert in_process_transport.broker.dead_letters == []


@transactional
def test_an_unknown_type_goes_to_the_dead_letters_when_asked() -> None:
    send(message(type="shop.CartAbandoned"))
    with override_settings(
        DOMAIN_EVENTS={"CONSUMER_UNKNOWN_TYPES": "dead_letter", "TRANSPORTS": TRANSPORTS}
    ):
        consume()

    assert InboxMessage.objects.get().outcome == InboxOutcome.UNKNOWN_TYPE
    assert len(in_process_transport.broker.dead_letters) == 1


@transactional
def test_a_garbage_message_is_recorded_as_malformed_and_the_consumer_goes_on() -> None:
    declare_recording()
    InProcessTransport().send_raw(PAYMENTS, {"content-type": "text/plain"}, b"\xff not json")
    send(message())

    running = consume()

    malformed = InboxMessage.objects.get(outcome=InboxOutcome.MALFORMED)
    assert bytes(malformed.raw_body) == b"\xff not json"
    assert "Not a CloudEvents message" in malformed.last_error
    assert effects() == 1, "the next message is consumed"
    assert running.totals.outcomes == {"malformed": 1, "processed": 1}


@transactional
def test_retry_inbox_runs_a_dead_message_again_once_the_receiver_is_fixed() -> None:
    broken = True

    @consumer(PaymentSettled, name="billing.record", max_attempts=1)
    def record(event: PaymentSettled, envelope: Envelope) -> None:
        Effect.record("billing.record", envelope)
        if broken:
            raise RuntimeError("bug")

    send(message())
    consume()
    assert InboxMessage.objects.get().outcome == InboxOutcome.DEAD

    broken = False
    call_command("retry_inbox")

    row = InboxMessage.objects.get()
    assert (row.outcome, row.raw_body) == (InboxOutcome.PROCESSED, None)
    assert effects() == 1


@transactional
def test_retry_inbox_consumes_an_unknown_type_once_a_consumer_takes_it() -> None:
    send(message())
    consume()
    assert InboxMessage.objects.get().outcome == InboxOutcome.UNKNOWN_TYPE
    with pytest.raises(CommandError, match="1 still failing"):
        call_command("retry_inbox", "--outcome", "unknown_type")

    declare_recording()
    call_command("retry_inbox", "--outcome", "unknown_type")

    row = InboxMessage.objects.get()
    assert (row.receiver, row.outcome) == ("billing.record", InboxOutcome.PROCESSED)
    assert effects() == 1


@transactional
def test_consume_events_consumes_the_configured_queue() -> None:
    declare_recording()
    send(message(1), message(2))

    call_command("consume_events", "--max-messages", "2")

    assert effects() == 2


@pytest.mark.django_db
def test_consume_events_refuses_a_missing_subscription() -> None:
    with (
        override_settings(DOMAIN_EVENTS={"TRANSPORTS": TRANSPORTS}),
        pytest.raises(CommandError, match=r"DOMAIN_EVENTS\['CONSUME'\] is not set"),
    ):
        call_command("consume_events", "--once")
    with pytest.raises(CommandError, match="No transport 'other' in DOMAIN_EVENTS"):
        call_command("consume_events", "--once", "--transport", "other")


@pytest.mark.django_db
def test_prune_inbox_deletes_processed_rows_past_their_retention_only() -> None:
    now = timezone.now()
    old = now - dt.timedelta(days=31)
    for number, (outcome, at) in enumerate(
        [
            (InboxOutcome.PROCESSED, old),
            (InboxOutcome.PROCESSED, now),
            (InboxOutcome.DEAD, old),
        ]
    ):
        InboxMessage.objects.create(
            message_id=str(number), receiver="r", outcome=outcome, received_at=at
        )

    call_command("prune_inbox", "--batch-size", "1")

    assert sorted(InboxMessage.objects.values_list("message_id", flat=True)) == ["1", "2"]


@transactional
def test_a_message_and_its_copy_take_one_statement_each_to_claim_without_a_savepoint() -> None:
    declare_recording()
    sent = message()
    send(sent, sent)

    with CaptureQueriesContext(connections["default"]) as queries:
        running = consume()

    assert running.totals.outcomes == {"processed": 1, "duplicate": 1}
    savepoints = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"].upper()]
    if connections["default"].vendor in ("postgresql", "sqlite"):
        # INSERT … ON CONFLICT DO NOTHING: a copy's insert writes nothing and raises nothing.
        assert savepoints == []
    else:
        assert savepoints, "elsewhere the insert runs in a savepoint"


@transactional
def test_a_message_with_a_negative_dataversion_is_dead_and_the_consumer_goes_on() -> None:
    declare_recording()
    send(message(version=-3), message(4))

    running = consume()

    [dead] = InboxMessage.objects.filter(outcome=InboxOutcome.DEAD)
    assert "dataversion" in dead.last_error
    assert effects() == 1
    assert running.failure is None
