"""Running a delivery known only by its id, as a queue's task does: its claim reads the row and
its event (one statement on PostgreSQL), and what cannot be delivered ends as it did when the
task loaded the row first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_domain_events import DomainEvent, Envelope, publish, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.runner import (
    Outcome,
    owed_delivery,
    run_delivery,
    run_stored_delivery,
)
from django_domain_events.models import Delivery, DeliveryAttempt, DeliveryState, OutboxEvent
from tests.stored_rows import UNDECODABLE_BECAUSE, UNDECODABLE_PAYLOAD, change_event

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRES = connection.vendor == "postgresql"


@dataclass(frozen=True)
class Packed(DomainEvent):
    event_type = "stored_runs.packed"

    parcel_id: int


@pytest.fixture
def ran(receiver_registry: Registry) -> list[tuple[Packed, Envelope]]:
    got: list[tuple[Packed, Envelope]] = []

    @receiver(Packed, name="stored_runs.record", queue="parcels", ordered=True)
    def record(event: Packed, envelope: Envelope) -> None:
        got.append((event, envelope))

    receiver("stored_runs.other", name="stored_runs.other")(lambda event: None)
    return got


def _published(parcel_id: int = 1) -> Delivery:
    with use_dispatcher("deferred"):
        publish(Packed(parcel_id=parcel_id), ordering_key=f"parcel-{parcel_id}")
    return Delivery.objects.get(event__payload__parcel_id=parcel_id)


def _statements(queries: CaptureQueriesContext) -> list[str]:
    # Where SIGALRM is taken (pytest-timeout), a sync receiver cannot be interrupted and its
    # transaction is given an idle timeout on PostgreSQL: a statement of the time limit's.
    return [
        query["sql"]
        for query in queries.captured_queries
        if "idle_in_transaction_session_timeout" not in query["sql"]
    ]


def test_the_delivery_runs_with_its_row_as_stored(ran: list[tuple[Packed, Envelope]]) -> None:
    delivery = _published(7)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=2)

    outcome, owed = run_stored_delivery(delivery.pk, "default")

    assert outcome is Outcome.DELIVERED
    assert owed is not None
    assert (owed.receiver, owed.dispatcher, owed.queue, owed.attempts, owed.ordering_key) == (
        "stored_runs.record",
        "deferred",
        "parcels",
        2,
        "parcel-7",
    )
    [(event, envelope)] = ran
    assert event == Packed(parcel_id=7)
    assert (envelope.delivery_id, envelope.attempt, envelope.ordering_key) == (
        delivery.pk,
        3,
        "parcel-7",
    )
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 3)


def test_claiming_and_loading_is_one_statement_on_postgresql(
    ran: list[tuple[Packed, Envelope]],
) -> None:
    delivery = _published()

    with CaptureQueriesContext(connection) as queries:
        outcome, _ = run_stored_delivery(delivery.pk, "default")

    assert outcome is Outcome.DELIVERED
    statements = _statements(queries)
    assert statements[0] == "BEGIN"
    assert statements[-1] == "COMMIT"
    claim = statements[1]
    assert claim.startswith("UPDATE")
    if ON_POSTGRES:
        # Claimed and read with its event at once; then the ordering line's next (none).
        assert OutboxEvent._meta.db_table in claim
        assert "RETURNING" in claim
        assert not any(sql.startswith("SELECT d.") for sql in statements)
    else:
        assert statements[2].startswith("SELECT d.")


def test_an_unordered_delivery_is_three_round_trips_on_postgresql(
    receiver_registry: Registry,
) -> None:
    receiver(Packed, name="stored_runs.plain")(lambda event: None)
    with use_dispatcher("deferred"):
        publish(Packed(parcel_id=1))
    delivery = Delivery.objects.get()

    with CaptureQueriesContext(connection) as queries:
        assert run_stored_delivery(delivery.pk, "default")[0] is Outcome.DELIVERED

    statements = _statements(queries)
    assert len(statements) == (3 if ON_POSTGRES else 4)
    assert (statements[0], statements[-1]) == ("BEGIN", "COMMIT")


def test_an_owed_delivery_without_its_event_claims_and_loads_alike(
    ran: list[tuple[Packed, Envelope]],
) -> None:
    delivery = _published()

    with CaptureQueriesContext(connection) as queries:
        assert run_delivery(owed_delivery(delivery, "default")) is Outcome.DELIVERED

    reads = [sql for sql in _statements(queries) if sql.startswith("SELECT d.")]
    assert len(reads) == (0 if ON_POSTGRES else 1)
    assert len(ran) == 1


@pytest.mark.parametrize("state", [DeliveryState.DELIVERED, DeliveryState.DEAD, "waiting"])
def test_a_delivery_not_runnable_is_skipped_with_nothing_run(
    ran: list[tuple[Packed, Envelope]], state: str
) -> None:
    delivery = _published()
    Delivery.objects.filter(pk=delivery.pk).update(state=state)

    assert run_stored_delivery(delivery.pk, "default") == (Outcome.SKIPPED, None)

    assert ran == []
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (state, 0)


def test_no_such_delivery_is_skipped() -> None:
    assert run_stored_delivery(uuid.uuid4(), "default") == (Outcome.SKIPPED, None)


def test_an_undecodable_event_goes_dead_its_attempt_counted(
    ran: list[tuple[Packed, Envelope]],
) -> None:
    delivery = _published()
    change_event(delivery.event_id, payload=UNDECODABLE_PAYLOAD)

    outcome, owed = run_stored_delivery(delivery.pk, "default")

    assert outcome is Outcome.DEAD
    assert owed is not None
    assert owed.receiver == "stored_runs.record"
    assert ran == []
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DEAD, 1)
    assert UNDECODABLE_BECAUSE in delivery.last_error
    [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert attempt.attempt == 1


def test_an_event_its_receiver_does_not_take_goes_dead_its_attempt_counted(
    ran: list[tuple[Packed, Envelope]],
) -> None:
    delivery = _published()
    OutboxEvent.objects.filter(pk=delivery.event_id).update(event_type="stored_runs.other")

    outcome, _ = run_stored_delivery(delivery.pk, "default")

    assert outcome is Outcome.DEAD
    assert ran == []
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DEAD, 1)
    assert "does not take 'stored_runs.other' events" in delivery.last_error


def test_an_unknown_receiver_goes_dead_without_an_attempt(
    ran: list[tuple[Packed, Envelope]],
) -> None:
    delivery = _published()
    Delivery.objects.filter(pk=delivery.pk).update(receiver="stored_runs.renamed", attempts=1)

    outcome, owed = run_stored_delivery(delivery.pk, "default")

    # The claim was rolled back: the attempts stay as they were, as when the row was read first.
    assert outcome is Outcome.DEAD
    assert owed is not None
    assert owed.receiver == "stored_runs.renamed"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DEAD, 1)
    assert "No receiver named 'stored_runs.renamed'" in delivery.last_error
    assert delivery.delivered_at is None


def test_a_delivery_run_with_its_event_in_hand_reads_nothing_back(
    receiver_registry: Registry,
) -> None:
    got: list[Packed] = []
    receiver(Packed, name="stored_runs.sync")(got.append)

    with CaptureQueriesContext(connection) as queries, use_dispatcher("sync"):
        publish(Packed(parcel_id=3))

    assert got == [Packed(parcel_id=3)]
    statements = _statements(queries)
    [claim] = [sql for sql in statements if sql.startswith("UPDATE")]
    assert OutboxEvent._meta.db_table not in claim
    assert not any(sql.startswith("SELECT") for sql in statements)
