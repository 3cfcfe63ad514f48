"""Aggregates of seed 003 that are plain objects, published by a ``UnitOfWork`` and cleared only
when the outer transaction commits (SQLite; the same scenarios run on PostgreSQL in
tests/integration/test_postgres_units_of_work.py)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from django_domain_events import EventRecorder, NamedEvent, UnitOfWork
from django_domain_events.declaration.registry import Registry
from tests import aggregate_scenarios as scenarios

transactional = pytest.mark.django_db(transaction=True)


@transactional
def test_the_seed_aspect_publishes_after_returning_and_clears_after(
    receiver_registry: Registry,
) -> None:
    scenarios.the_seed_aspect_publishes_after_returning_and_clears_after()


@transactional
def test_inside_a_transaction_events_stay_recorded_until_the_outer_commit() -> None:
    scenarios.inside_a_transaction_events_stay_recorded_until_the_outer_commit()


@transactional
def test_an_outer_rollback_keeps_the_events_so_a_retry_publishes_them() -> None:
    scenarios.an_outer_rollback_keeps_the_events_so_a_retry_publishes_them()


@transactional
def test_a_failed_unit_of_work_in_a_savepoint_publishes_nothing_and_keeps_its_events() -> None:
    scenarios.a_failed_unit_of_work_in_a_savepoint_publishes_nothing_and_keeps_its_events()


@transactional
def test_a_savepoint_rolled_back_after_the_unit_of_work_lets_a_later_one_publish() -> None:
    scenarios.a_savepoint_rolled_back_after_the_unit_of_work_lets_a_later_one_publish_again()


@transactional
def test_two_units_of_work_in_one_transaction_publish_an_event_once() -> None:
    scenarios.two_units_of_work_in_one_transaction_publish_an_event_once()


@transactional
def test_a_frozen_dataclass_can_record_and_an_invalid_event_leaves_nothing_written() -> None:
    @dataclass(frozen=True)
    class Ledger(EventRecorder):
        ledger_id: int

    ledger = Ledger(1)
    ledger.record_event(NamedEvent("scenarios.ledger_closed", {"at": object()}))

    with pytest.raises(TypeError, match="JSON value expected"), UnitOfWork() as uow:
        uow.add(ledger)

    assert scenarios.stored() == []
    assert len(ledger.recorded_events) == 1


def test_bad_arguments_say_what_to_pass() -> None:
    cart = scenarios.Cart(1)
    with pytest.raises(TypeError, match=r"pass an instance, e\.g\. record_event\(CartChecked"):
        cart.record_event(scenarios.CartCheckedOut)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a DomainEvent or a NamedEvent, got dict"):
        cart.record_event({"cart_id": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="add EventRecorder to the bases of object"):
        UnitOfWork().add(object())  # type: ignore[type-var]


def test_a_pickled_aggregate_does_not_carry_its_recorded_events() -> None:
    cart = scenarios.Cart(1)
    cart.check_out()

    copy = pickle.loads(pickle.dumps(cart))

    assert copy.checked_out is True
    assert copy.recorded_events == ()
