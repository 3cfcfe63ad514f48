"""Attempt history and pruning on PostgreSQL: a run ended by a lost connection is no attempt
and leaves no history; two prunes at once (two relays on their schedule) lock disjoint events,
raise nothing and together delete everything past its retention, history included."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_domain_events import NamedEvent, publish_many, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.lost_connections import MAX_IN_A_ROW
from django_domain_events.delivery.runner import Outcome, owed_delivery, run_delivery
from django_domain_events.models import Delivery, DeliveryAttempt, DeliveryState, OutboxEvent
from django_domain_events.operations.pruning import PruneResult, prune_events

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

EVENT = "integration_attempts.happened"


def run(delivery: Delivery) -> Outcome:
    return run_delivery(owed_delivery(Delivery.objects.get(pk=delivery.pk), "default"))


@pytest.mark.postgres  # pg_terminate_backend()
def test_a_lost_connection_leaves_no_attempt_until_it_counts(receiver_registry: Registry) -> None:
    @receiver(EVENT, name="integration.attempts.severs", max_attempts=5)
    def severs(event: NamedEvent) -> None:
        with connection.cursor() as cursor:  # the server ends this connection, as on a restart
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with use_dispatcher("deferred"):
        publish_many([NamedEvent(EVENT, {})])
    delivery = Delivery.objects.get()

    for _ in range(MAX_IN_A_ROW):
        assert run(delivery) is Outcome.FAILED
    assert Delivery.objects.get().attempts == 0
    assert not DeliveryAttempt.objects.exists()

    assert run(delivery) is Outcome.FAILED  # one more in a row is the receiver's doing

    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.attempt == 1
    assert attempt.error.startswith("OperationalError: terminating connection")


@override_settings(DOMAIN_EVENTS={"RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0})
def test_two_prunes_at_once_raise_nothing_and_delete_everything_once(
    receiver_registry: Registry,
) -> None:
    @receiver(EVENT, name="integration.attempts.fine")
    def fine(event: NamedEvent) -> None:
        pass

    @receiver(EVENT, name="integration.attempts.flaky", max_attempts=3)
    def flaky(event: NamedEvent) -> None:
        raise ValueError("not yet")

    with use_dispatcher("deferred"):
        publish_many([NamedEvent(EVENT, {"n": n}) for n in range(300)])
    Delivery.objects.filter(receiver="integration.attempts.fine").update(
        state=DeliveryState.DELIVERED
    )
    for delivery in Delivery.objects.filter(receiver="integration.attempts.flaky")[:40]:
        run(delivery)
    Delivery.objects.filter(receiver="integration.attempts.flaky").update(state=DeliveryState.DEAD)
    then = timezone.now() - dt.timedelta(days=40)
    OutboxEvent.objects.update(occurred_at=then)
    Delivery.objects.update(created_at=then, last_attempt_at=then)
    assert DeliveryAttempt.objects.count() == 40

    barrier = threading.Barrier(2)
    results: list[PruneResult] = []
    errors: list[BaseException] = []
    retention = {"default": {"delivered": dt.timedelta(days=7), "dead": dt.timedelta(days=7)}}

    def prune() -> None:
        try:
            with override_settings(DOMAIN_EVENTS={"RETENTION": retention}):
                barrier.wait(timeout=10)
                results.append(prune_events(batch_size=20))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(result.events for result in results) == 300
    assert sum(result.deliveries for result in results) == 600
    assert sum(result.attempts for result in results) == 40
    assert not OutboxEvent.objects.exists()
    assert not DeliveryAttempt.objects.exists()
