"""The operations behind the admin's actions and the commands: each one call that changes the
rows and hands what it released or wrote to its dispatcher, once the surrounding transaction
commits, and never when it rolls back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.db import transaction

from django_domain_events import GiveUp, NamedEvent, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.redelivery import (
    replay_events,
    replay_selected,
    retry_deliveries,
    retry_selected,
)
from django_domain_events.operations.selection import DeliverySelection, EventSelection
from django_domain_events.operations.skipping import SkipResult, skip_dead_deliveries

pytestmark = pytest.mark.django_db(transaction=True)

STEP = "unit_operations.step"
ORDERED = "unit_operations.ordered"


@contextmanager
def rolled_back() -> Iterator[None]:
    """A transaction that rolls back when the block ends."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@dataclass
class Line:
    """What the ordered receiver does: it gives up on the steps in ``give_up``; every run is
    recorded in memory, so a run inside a transaction that rolls back still shows."""

    give_up: set[tuple[str, int]] = field(default_factory=set)
    runs: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
def line(receiver_registry: Registry) -> Line:
    """An ordered receiver of ``STEP``, ``"sync"`` (the default dispatcher), blocking on a dead
    delivery."""
    state = Line()

    @receiver(STEP, name=ORDERED, ordered=True)
    def ordered(event: NamedEvent) -> None:
        spot = (event.payload["key"], event.payload["n"])
        state.runs.append(spot)
        if spot in state.give_up:
            raise GiveUp(f"step {spot} cannot be done")

    return state


def step(key: str, n: int) -> uuid.UUID:
    return publish(STEP, {"key": key, "n": n}, ordering_key=key)


def of(key: str, n: int) -> Delivery:
    return Delivery.objects.get(receiver=ORDERED, event__payload__key=key, event__payload__n=n)


def blocked_line(line: Line, key: str = "a", waiting: int = 2) -> Delivery:
    """A line whose first delivery is dead with ``waiting`` behind it; returns the dead one."""
    line.give_up.add((key, 1))
    for n in range(1, waiting + 2):
        step(key, n)
    line.runs.clear()
    dead = of(key, 1)
    assert dead.state == DeliveryState.DEAD
    return dead


# Skipping dead deliveries in their ordering lines --------------------------------------------


def test_skipping_outside_a_transaction_hands_the_line_over_at_once(line: Line) -> None:
    dead = blocked_line(line)
    other = blocked_line(line, key="b", waiting=0)

    result = skip_dead_deliveries(Delivery.objects.filter(pk__in=[dead.pk, other.pk]))

    assert isinstance(result, SkipResult)
    assert sorted(row.pk for row in result.skipped) == sorted([dead.pk, other.pk])
    assert result.released == 1  # nothing waited behind the dead one of "b"
    assert line.runs == [("a", 2), ("a", 3)]
    dead.refresh_from_db()
    assert (dead.state, dead.ordering_key) == (DeliveryState.DEAD, "")


def test_skipping_hands_the_line_over_once_the_transaction_commits(line: Line) -> None:
    dead = blocked_line(line)

    with transaction.atomic():
        result = skip_dead_deliveries([dead])
        assert result.released == 1
        assert line.runs == []
        assert of("a", 2).state != DeliveryState.DELIVERED

    assert line.runs == [("a", 2), ("a", 3)]
    assert (of("a", 2).state, of("a", 3).state) == (DeliveryState.DELIVERED,) * 2


def test_skipping_hands_nothing_over_when_the_transaction_rolls_back(line: Line) -> None:
    dead = blocked_line(line)

    with rolled_back():
        skip_dead_deliveries([dead])

    assert line.runs == []
    dead.refresh_from_db()
    assert dead.ordering_key == "a"
    assert (of("a", 2).state, of("a", 3).state) == (DeliveryState.WAITING,) * 2


def test_skipping_leaves_deliveries_that_are_not_dead_or_not_ordered_alone(
    line: Line, receiver_registry: Registry
) -> None:
    @receiver(STEP, name="unit_operations.plain")
    def plain(event: NamedEvent) -> None:
        pass

    step("a", 1)
    delivered = of("a", 1)
    unordered = Delivery.objects.get(receiver="unit_operations.plain")
    Delivery.objects.filter(pk=unordered.pk).update(state=DeliveryState.DEAD)

    result = skip_dead_deliveries([delivered, unordered])

    assert result == SkipResult(skipped=(), released=0)
    delivered.refresh_from_db()
    assert delivered.ordering_key == "a"


# Retrying and replaying ----------------------------------------------------------------------


def test_a_retry_runs_once_the_transaction_commits(line: Line) -> None:
    dead = blocked_line(line)
    line.give_up.clear()

    with transaction.atomic():
        retried = retry_deliveries([dead])
        assert [row.pk for row in retried] == [dead.pk]
        assert line.runs == []

    # The retried one runs, and settling it lets the line behind it go on.
    assert line.runs == [("a", 1), ("a", 2), ("a", 3)]
    assert of("a", 1).state == DeliveryState.DELIVERED


def test_a_retry_hands_nothing_over_when_the_transaction_rolls_back(line: Line) -> None:
    dead = blocked_line(line)
    line.give_up.clear()

    with rolled_back():
        retry_deliveries([dead])

    assert line.runs == []
    dead.refresh_from_db()
    assert (dead.state, dead.attempts) == (DeliveryState.DEAD, 1)


def test_retry_selected_reports_what_it_handed_over(line: Line) -> None:
    blocked_line(line)
    line.give_up.clear()

    result = retry_selected(DeliverySelection(receivers=(ORDERED,)))

    assert result.deliveries == 1
    assert (result.totals.claimed, result.totals.delivered) == (1, 1)
    assert line.runs == [("a", 1), ("a", 2), ("a", 3)]


def test_a_replay_runs_once_the_transaction_commits(
    line: Line, receiver_registry: Registry
) -> None:
    event_id = step("a", 1)
    line.runs.clear()
    ordered = receiver_registry.get(ORDERED)
    assert ordered is not None

    with transaction.atomic():
        created = replay_events(OutboxEvent.objects.filter(pk=event_id), [ordered])
        assert [row.event_id for row in created] == [event_id]
        assert line.runs == []

    assert line.runs == [("a", 1)]
    assert Delivery.objects.get(pk=created[0].pk).state == DeliveryState.DELIVERED


def test_a_replay_hands_nothing_over_when_the_transaction_rolls_back(
    line: Line, receiver_registry: Registry
) -> None:
    event_id = step("a", 1)
    line.runs.clear()
    ordered = receiver_registry.get(ORDERED)
    assert ordered is not None

    with rolled_back():
        replay_events(OutboxEvent.objects.filter(pk=event_id), [ordered])

    assert line.runs == []
    assert Delivery.objects.count() == 1


def test_replay_selected_reports_what_it_handed_over(line: Line) -> None:
    event_id = step("a", 1)
    line.runs.clear()

    result = replay_selected(EventSelection(ids=(event_id,)))

    assert result.deliveries == 1
    assert (result.totals.claimed, result.totals.delivered) == (1, 1)
    assert line.runs == [("a", 1)]
