"""Two copies of one delivery run at the same time on PostgreSQL: the row lock taken by the
claim makes one of them wait, find the delivery settled, and skip it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from django_domain_events import DomainEvent, Envelope, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.runner import (
    Outcome,
    owed_delivery,
    run_delivery,
    run_stored_delivery,
)
from django_domain_events.models import Delivery, DeliveryState
from tests.lock_waits import lock_waiters
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Charged(DomainEvent):
    event_type = "integration_postgres.charged"

    amount_cents: int


@pytest.mark.parametrize("by_id", [False, True], ids=["owed", "by-id"])
def test_two_copies_of_one_delivery_run_the_receiver_once(
    receiver_registry: Registry, by_id: bool
) -> None:
    saw_waiting_copy: list[bool] = []

    @receiver(Charged, name="integration.postgres.charge")
    def charge(event: Charged, envelope: Envelope) -> None:
        # Hold the claim until the other copy is blocked on the row lock, so the two really
        # overlap; give up waiting after a few seconds rather than hang.
        deadline = time.monotonic() + 5
        while lock_waiters() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        saw_waiting_copy.append(lock_waiters() > 0)
        Effect.objects.create(receiver="charge", event_id=envelope.event_id)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        event_id = publish(Charged(amount_cents=1250))
    row = Delivery.objects.get()
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def run_copy() -> None:
        try:
            owed = owed_delivery(row, "default")  # each copy loads nothing until it runs
            barrier.wait(timeout=10)
            if by_id:  # as the Celery task runs it, knowing only its id
                outcomes.append(run_stored_delivery(row.pk, "default")[0])
            else:
                outcomes.append(run_delivery(owed))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_copy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(outcomes, key=lambda outcome: outcome.value) == [
        Outcome.DELIVERED,
        Outcome.SKIPPED,
    ]
    assert saw_waiting_copy == [True]
    assert list(Effect.objects.values_list("event_id", flat=True)) == [event_id]
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 1)


def test_a_copy_that_runs_after_delivery_is_skipped(receiver_registry: Registry) -> None:
    runs: list[Any] = []
    receiver(Charged, name="integration.postgres.once")(runs.append)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        publish(Charged(amount_cents=1))
    owed = owed_delivery(Delivery.objects.get(), "default")

    assert run_delivery(owed) is Outcome.DELIVERED
    assert run_delivery(owed) is Outcome.SKIPPED
    assert len(runs) == 1
