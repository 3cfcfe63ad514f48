"""A due scheduled delivery on PostgreSQL with two relays: one claims it, the other skips the
locked row and then finds it claimed, so the receiver runs once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_domain_events import Envelope, NamedEvent, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay, RelayTotals
from django_domain_events.models import Delivery, DeliveryState
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

REMINDED = "integration_scheduling.reminded"


@pytest.fixture
def remind(receiver_registry: Registry) -> None:
    @receiver(REMINDED, name="integration.scheduling.remind")
    def remind(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(receiver="remind", event_id=envelope.event_id)


def publish_due() -> None:
    """A scheduled delivery whose due time has come."""
    publish(REMINDED, {}, delay=dt.timedelta(hours=1))
    Delivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


def in_another_thread(relay: Relay) -> int:
    """How many deliveries ``relay`` claims from a connection of its own."""
    claimed: list[int] = []

    def claim() -> None:
        try:
            claimed.append(len(relay.claim_batch()))
        finally:
            connection.close()

    thread = threading.Thread(target=claim)
    thread.start()
    thread.join(timeout=30)
    assert claimed, "the other relay's claim did not finish"
    return claimed[0]


def test_a_second_relay_skips_the_due_delivery_the_first_is_claiming(remind: None) -> None:
    publish_due()
    first, second = Relay(), Relay()

    with transaction.atomic():
        claimed = first.claim_batch()
        assert len(claimed) == 1
        # The first relay's claim has not committed: its row lock is held, and skipped.
        assert in_another_thread(second) == 0
    # Committed: the delivery is dispatched under the first relay's lease, owed no more.
    assert in_another_thread(second) == 0

    totals = first.hand_over(claimed)

    assert totals.delivered == 1
    assert second.run_pass().claimed == 0
    assert Effect.objects.count() == 1
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


def test_two_relays_passing_at_once_run_a_due_delivery_once(remind: None) -> None:
    publish_due()
    barrier = threading.Barrier(2)
    totals: list[RelayTotals] = []
    errors: list[BaseException] = []

    def pass_once() -> None:
        try:
            relay = Relay()
            barrier.wait(timeout=10)
            totals.append(relay.run_pass())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pass_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(total.claimed for total in totals) == [0, 1]
    assert sum(total.delivered for total in totals) == 1
    assert Effect.objects.count() == 1
