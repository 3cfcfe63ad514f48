"""collect_events(): publish() inside the block is validated and buffered, then written in one
bulk write when the block ends; commit=False is a dry run that writes nothing."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_domain_events import (
    DomainEvent,
    NamedEvent,
    PayloadError,
    collect_events,
    publish,
    publish_many,
    receiver,
    use_dispatcher,
)
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.publishing.collecting import DeliveryRow, EventRow
from django_domain_events.testing import capture_events
from tests.testapp.models import Account

transactional = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Picked(DomainEvent):
    event_type = "unit_collecting.picked"

    sku: str
    price: Decimal = Decimal("1.00")


class Boom(Exception):
    pass


@pytest.fixture
def picked(receiver_registry: Registry) -> list[str]:
    """The skus the one (sync) receiver of Picked got, in order."""
    got: list[str] = []
    receiver(Picked, name="unit.collecting.on_picked")(lambda event: got.append(event.sku))
    return got


def inserts(captured: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"].split(None, 1)[0].upper()
        for query in captured.captured_queries
        if query["sql"].upper().startswith(("INSERT", "WITH"))
    ]


@transactional
def test_events_are_written_together_when_the_block_ends_and_dispatched_after_commit(
    picked: list[str],
) -> None:
    with transaction.atomic():
        with CaptureQueriesContext(connection) as whole, collect_events() as collected:
            with CaptureQueriesContext(connection) as inside:
                first = publish(Picked(sku="a"))
                rest = publish_many([Picked(sku="b"), Picked(sku="c")])
            assert inside.captured_queries == []
            assert not OutboxEvent.objects.exists()
        # One INSERT per table (a single statement on PostgreSQL) for all three events.
        assert inserts(whole) == (
            ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "INSERT"]
        )
        assert OutboxEvent.objects.count() == 3
        assert picked == []

    assert picked == ["a", "b", "c"]
    assert collected.ids == [first, *rest]
    assert set(OutboxEvent.objects.values_list("id", flat=True)) == {first, *rest}
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@transactional
def test_an_exception_in_the_block_discards_everything_it_collected(picked: list[str]) -> None:
    collected = None

    def collect_then_fail() -> None:
        nonlocal collected
        with collect_events() as collected:
            publish(Picked(sku="a"))
            raise Boom

    with transaction.atomic():
        with pytest.raises(Boom):
            collect_then_fail()
        publish(Picked(sku="after"))

    assert picked == ["after"]
    assert OutboxEvent.objects.count() == 1
    assert collected is not None
    assert len(collected) == 0


@transactional
def test_events_of_a_rolled_back_savepoint_inside_the_block_are_left_out(
    picked: list[str],
) -> None:
    with transaction.atomic(), collect_events() as collected:
        publish(Picked(sku="kept"))
        with contextlib.suppress(Boom), transaction.atomic():
            publish(Picked(sku="dropped"))
            raise Boom
        with transaction.atomic():
            publish(Picked(sku="also kept"))

    assert picked == ["kept", "also kept"]
    assert [row.payload["sku"] for row in collected.events] == ["kept", "also kept"]
    assert OutboxEvent.objects.count() == 2


@transactional
def test_outside_a_transaction_the_block_writes_in_a_transaction_of_its_own(
    picked: list[str],
) -> None:
    with collect_events():
        publish(Picked(sku="a"))
        publish(Picked(sku="b"))
        assert not OutboxEvent.objects.exists()
        assert picked == []

    assert picked == ["a", "b"]
    assert OutboxEvent.objects.count() == 2


@transactional
def test_a_transaction_that_began_inside_the_block_is_refused(picked: list[str]) -> None:
    with (
        collect_events(),
        pytest.raises(RuntimeError, match=r"began inside the block.*atomic\(\), collect"),
        transaction.atomic(),
    ):
        publish(Picked(sku="a"))

    assert not OutboxEvent.objects.exists()
    assert picked == []


@transactional
def test_capture_events_sees_collected_events_once_they_are_written(picked: list[str]) -> None:
    with capture_events() as published, transaction.atomic():
        with collect_events():
            publish(Picked(sku="a"))
            assert published == []
        published.assert_published(Picked, count=1, sku="a")


@transactional
def test_aggregate_saves_inside_the_block_are_written_with_the_rest(picked: list[str]) -> None:
    with transaction.atomic(), collect_events() as collected:
        account = Account.objects.create(owner="ada")
        account.record_event(Picked(sku="from the aggregate"))
        account.save()
        publish(Picked(sku="direct"))
        assert account.recorded_events == ()
        assert not OutboxEvent.objects.exists()

    assert picked == ["from the aggregate", "direct"]
    assert len(collected) == 2


# Dry run --------------------------------------------------------------------------------------


@transactional
def test_dry_run_returns_the_would_be_rows_and_writes_or_dispatches_nothing(
    picked: list[str], receiver_registry: Registry
) -> None:
    receiver(Picked, name="unit.collecting.later", dispatcher="deferred")(lambda event: None)

    with (
        capture_events() as published,
        CaptureQueriesContext(connection) as queries,
        transaction.atomic(),
        collect_events(commit=False) as collected,
    ):
        event_id = publish(Picked(sku="a", price=Decimal("2.50")))
        publish("unit_collecting.named", {"n": 1})

    assert not OutboxEvent.objects.exists()
    assert not Delivery.objects.exists()
    assert inserts(queries) == []
    assert picked == []
    assert published == []

    first, second = collected.events
    assert isinstance(first, EventRow)
    assert first.id == event_id
    assert isinstance(first.id, uuid.UUID)
    assert (first.event_type, first.version) == ("unit_collecting.picked", 1)
    assert first.payload == {"sku": "a", "price": "2.50"}
    assert first.event == Picked(sku="a", price=Decimal("2.50"))
    assert first.correlation_id == str(event_id)
    assert first.causation_id is None
    assert second.event == NamedEvent("unit_collecting.named", {"n": 1})
    assert all(isinstance(row, DeliveryRow) for row in collected.deliveries)
    assert sorted(
        (row.receiver, row.dispatcher, row.state, row.event_id) for row in collected.deliveries
    ) == [
        ("unit.collecting.later", "deferred", DeliveryState.PENDING.value, event_id),
        ("unit.collecting.on_picked", "sync", DeliveryState.PENDING.value, event_id),
    ]
    assert "dry run" in repr(collected)


@transactional
def test_dry_run_still_validates_and_resolves_the_dispatcher_override(picked: list[str]) -> None:
    with collect_events(commit=False) as collected:
        with pytest.raises(PayloadError, match=r"Picked\.price: Decimal expected"):
            publish(Picked(sku="a", price=1.5))  # type: ignore[arg-type]
        with use_dispatcher("deferred"):
            publish(Picked(sku="b"))

    assert [row.dispatcher for row in collected.deliveries] == ["deferred"]
    assert not OutboxEvent.objects.exists()


@transactional
def test_a_dry_run_saves_the_aggregate_but_not_its_events(picked: list[str]) -> None:
    with collect_events(commit=False) as collected:
        account = Account(owner="ada")
        account.record_event(Picked(sku="a"))
        account.save()

    assert Account.objects.count() == 1
    assert not OutboxEvent.objects.exists()
    assert [row.event for row in collected.events] == [Picked(sku="a")]


# Nesting --------------------------------------------------------------------------------------


@transactional
def test_an_inner_block_hands_its_events_to_the_outer_one(picked: list[str]) -> None:
    with transaction.atomic(), collect_events() as outer:
        publish(Picked(sku="a"))
        with collect_events() as inner:
            publish(Picked(sku="b"))
        assert [row.payload["sku"] for row in inner.events] == ["b"]
        assert not OutboxEvent.objects.exists()

    assert picked == ["a", "b"]
    assert len(outer) == 2


@transactional
def test_an_outer_dry_run_writes_nothing_an_inner_block_collected(picked: list[str]) -> None:
    with collect_events(commit=False) as outer, transaction.atomic(), collect_events():
        publish(Picked(sku="a"))

    assert not OutboxEvent.objects.exists()
    assert [row.payload["sku"] for row in outer.events] == ["a"]


@transactional
def test_an_inner_dry_run_keeps_its_events_from_the_outer_block(picked: list[str]) -> None:
    with transaction.atomic(), collect_events() as outer:
        publish(Picked(sku="a"))
        with collect_events(commit=False) as inner:
            publish(Picked(sku="b"))

    assert picked == ["a"]
    assert len(outer) == 1
    assert len(inner) == 1
