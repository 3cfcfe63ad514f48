"""Two Django projects, one broker, real processes and real faults: the shop publishes
``shop.PaymentSettled`` (``publish_payments``) and its relay sends it (``relay_events``); the
accounting service consumes it into its ledger (``consume_events``). Whatever the broker path,
the consumer's death or the bytes on the queue do, each test ends in the figures: sent N,
consumed N, no effect twice, nothing lost, nothing left unsettled anywhere.
"""

from __future__ import annotations

import signal

import pytest

from tests.e2e.services.two_projects import (
    CONSUMER,
    Database,
    Services,
    all_of,
    booked,
    consumer_totals,
    figures,
    payment_settled,
    wait_for_queue,
)
from tests.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.services]


def test_the_broker_down_at_commit_the_publish_succeeds_and_the_relay_sends_after(
    services: Services,
) -> None:
    consumer = services.consumer()
    consumer.start(services.accounting_env(through_proxy=False))
    wait_for_queue(services.broker, services.report)
    services.proxy.cut()
    relay = services.relay()
    relay.start(services.shop_env())

    publisher = services.publisher(3)
    publisher.start(services.shop_env())
    wait_until(lambda: publisher.exited() is not None, "the publisher to finish", timeout=60)
    assert publisher.exited() == 0, publisher.output()
    wait_until(
        lambda: (
            services.route_deliveries(
                "state = 'failed' AND attempts >= 1 AND last_error LIKE '%TransportError%'"
            )
            == 3
        ),
        "the relay to fail to send all three",
        timeout=60,
        interval=0.2,
        report=services.report,
    )
    assert booked(services.accounting) == 0
    services.proxy.restore()
    services.wait_booked(3)

    assert relay.terminate() == 0, relay.output()
    assert consumer.terminate() == 0, consumer.output()
    assert figures(services.shop, services.accounting, services.broker) == all_of(3)
    assert consumer_totals(consumer) == ["3 messages (processed 3)"]


def test_a_broker_restart_mid_stream_loses_and_doubles_nothing(services: Services) -> None:
    count = 20
    consumer = services.consumer()
    consumer.start(services.accounting_env())
    wait_for_queue(services.broker, services.report)
    relay = services.relay()
    relay.start(services.shop_env())
    publisher = services.publisher(count, "--interval", "0.1")
    publisher.start(services.shop_env())
    wait_until(
        lambda: booked(services.accounting) >= 5,
        "the first entries to be booked",
        timeout=120,
        interval=0.1,
        report=services.report,
    )

    # Every connection through the proxy drops, the shop's and the consumer's, and new ones
    # are refused until it is restored: a broker restart, as both sides see it.
    services.proxy.cut()
    wait_until(
        lambda: "lost the broker" in consumer.output(),
        "the consumer to notice the broker is gone",
        timeout=60,
        interval=0.1,
        report=services.report,
    )
    wait_until(
        lambda: services.route_deliveries("last_error LIKE '%TransportError%'") >= 1,
        "a send to fail while the broker is away",
        timeout=60,
        interval=0.1,
        report=services.report,
    )
    services.proxy.restore()
    services.wait_booked(count)

    wait_until(lambda: publisher.exited() is not None, "the publisher to finish", timeout=60)
    assert publisher.exited() == 0, publisher.output()
    assert relay.terminate() == 0, relay.output()
    assert consumer.terminate() == 0, consumer.output()
    assert figures(services.shop, services.accounting, services.broker) == all_of(count)
    assert consumer.starts == 1, "the consumer connected again by itself"


def test_a_consumer_killed_between_its_commit_and_the_ack_has_no_second_effect(
    services: Services,
) -> None:
    first = services.consumer()
    first.start(services.accounting_env(ACCOUNTING_CRASH_AFTER_COMMIT="3"))
    wait_for_queue(services.broker, services.report)
    services.publisher(5).start(services.shop_env())
    services.relay().start(services.shop_env())

    wait_until(lambda: first.exited() is not None, "the consumer to kill itself", timeout=120)
    assert first.exited() == -signal.SIGKILL, first.output()
    # The third booking committed with its inbox row; its message was never acknowledged.
    assert booked(services.accounting) == 3
    second = services.process("consumer-again", "consumerproject", "consume_events")
    second.start(services.accounting_env())
    services.wait_booked(5)
    # The copy of the third comes back at once on RabbitMQ, once claimed from the dead
    # consumer on Redis Streams: either way, nothing is left waiting for it.
    wait_until(
        lambda: services.broker.queued() == 0,
        "the dead consumer's messages to be settled",
        report=services.report,
    )
    wait_until(
        lambda: services.route_deliveries("state = 'delivered'") == 5,
        "the relay to have sent all five",
        report=services.report,
    )

    assert second.terminate() == 0, second.output()
    # The killed consumer's unacknowledged third message came back: a duplicate, no effect.
    assert consumer_totals(second) == ["3 messages (duplicate 1, processed 2)"]
    assert figures(services.shop, services.accounting, services.broker) == all_of(5)


def inbox(accounting: Database) -> list[tuple[str, str]]:
    return sorted(
        (str(receiver), str(outcome))
        for receiver, outcome in accounting.rows(
            "SELECT receiver, outcome FROM domain_events_inbox"
        )
    )


def test_the_same_message_delivered_twice_is_booked_once(services: Services) -> None:
    consumer = services.consumer("--max-messages", "2")
    consumer.start(services.accounting_env(through_proxy=False))
    wait_for_queue(services.broker, services.report)
    headers, body = payment_settled(7)

    services.broker.put("shop.PaymentSettled", headers, body)
    services.broker.put("shop.PaymentSettled", headers, body)
    wait_until(lambda: consumer.exited() is not None, "the consumer to take both", timeout=60)

    assert consumer.exited() == 0, consumer.output()
    assert consumer_totals(consumer) == ["2 messages (duplicate 1, processed 1)"]
    assert inbox(services.accounting) == [(CONSUMER, "processed")]
    assert services.accounting.rows("SELECT order_id, amount_cents FROM ledger_ledgerentry") == [
        (7, 1225)
    ]
    assert services.broker.queued() == 0


def test_garbage_foreign_json_and_an_unknown_type_are_recorded_and_consuming_goes_on(
    services: Services,
) -> None:
    consumer = services.consumer("--max-messages", "4")
    consumer.start(services.accounting_env(through_proxy=False))
    wait_for_queue(services.broker, services.report)
    structured = {"content-type": "application/cloudevents+json"}
    unknown_headers, unknown_body = payment_settled(8)
    unknown_body = unknown_body.replace(b'"shop.PaymentSettled"', b'"shop.RefundIssued"')

    services.broker.put("shop.PaymentSettled", structured, b"\xff\x00 forged, not JSON")
    services.broker.put("shop.PaymentSettled", structured, b'{"hello": "world"}')
    services.broker.put("shop.RefundIssued", unknown_headers, unknown_body)
    services.broker.put("shop.PaymentSettled", *payment_settled(9))
    wait_until(lambda: consumer.exited() is not None, "the consumer to take all four", timeout=60)

    assert consumer.exited() == 0, consumer.output()
    assert consumer.starts == 1
    assert consumer_totals(consumer) == ["4 messages (malformed 2, processed 1, unknown_type 1)"]
    # CONSUMER_UNKNOWN_TYPES is "record" (the default): each is kept, and acknowledged.
    assert inbox(services.accounting) == [
        ("", "malformed"),
        ("", "malformed"),
        ("", "unknown_type"),
        (CONSUMER, "processed"),
    ]
    assert services.accounting.rows("SELECT order_id FROM ledger_ledgerentry") == [(9,)]
    assert services.broker.queued() == 0
