"""Ordering's locks between real concurrent transactions on PostgreSQL: publishers of one key take
turns in commit order, and a delivery settling while a publish on its key is in flight still
releases what that publish wrote behind it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.test import override_settings

from django_domain_events import Envelope, NamedEvent, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.runner import owed_delivery, run_delivery
from django_domain_events.models import Delivery, DeliveryState
from tests.integration.test_postgres_delivery import lock_waiters
from tests.processes import wait_until
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

STEP = "integration_ordering.step"


def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``work`` in a thread with its own connection; errors are kept for the test."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@pytest.fixture
def ordered(receiver_registry: Registry) -> threading.Event:
    """An ordered receiver of ``STEP`` that records its runs and, for event n=1, waits until
    the returned event is set before returning."""
    go = threading.Event()

    @receiver(STEP, name="integration.ordered", ordered=True)
    def record(event: NamedEvent, envelope: Envelope) -> None:
        if event.payload["n"] == 1:
            assert go.wait(timeout=20), "the test never let the first delivery finish"
        Effect.objects.create(receiver=f"n{event.payload['n']}", event_id=envelope.event_id)

    return go


def test_a_delivery_settling_during_a_publish_on_its_key_releases_what_it_wrote(
    ordered: threading.Event,
) -> None:
    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        publish(STEP, {"n": 1}, ordering_key="k")
    first = owed_delivery(Delivery.objects.get(), "default")
    running, errors = in_thread(lambda: run_delivery(first))
    # The first delivery's receiver is running. A publish on its key sees it unsettled and
    # writes its delivery waiting, holding the key's lock until it commits.
    with transaction.atomic():
        publish(STEP, {"n": 2}, ordering_key="k")
        second = Delivery.objects.get(ordering_seq=2)
        assert second.state == DeliveryState.WAITING
        ordered.set()
        # The first delivery, done, now waits for the key's lock to release what is behind
        # it; it must see the second one once this commits.
        wait_until(lock_waiters, "a transaction to wait for the key's lock", interval=0.01)
    running.join(timeout=30)

    assert errors == []
    assert list(Effect.objects.order_by("pk").values_list("receiver", flat=True)) == ["n1", "n2"]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


def test_publishers_of_one_key_take_turns_in_commit_order(ordered: threading.Event) -> None:
    ordered.set()
    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        holding = threading.Event()
        release = threading.Event()

        def first_publisher() -> None:
            with transaction.atomic():
                publish(STEP, {"n": 1}, ordering_key="k")
                holding.set()
                assert release.wait(timeout=20)

        def second_publisher() -> None:
            with transaction.atomic():
                publish(STEP, {"n": 2}, ordering_key="k")

        first, first_errors = in_thread(first_publisher)
        assert holding.wait(timeout=20)
        second, second_errors = in_thread(second_publisher)
        # The second publish waits for the first's transaction.
        wait_until(lock_waiters, "the second publish to wait for the key's lock", interval=0.01)
        release.set()
        first.join(timeout=30)
        second.join(timeout=30)

    assert first_errors == second_errors == []
    rows = Delivery.objects.order_by("ordering_seq")
    assert [(row.event.payload["n"], row.ordering_seq, row.state) for row in rows] == [
        (1, 1, DeliveryState.PENDING),
        (2, 2, DeliveryState.WAITING),
    ]
