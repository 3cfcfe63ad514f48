"""Plain-object aggregates published by a ``UnitOfWork``, in nested ``atomic()`` blocks: the
scenarios tests/unit runs on SQLite and tests/integration on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from django_domain_events import DomainEvent, EventRecorder, UnitOfWork, receiver
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent


@dataclass(frozen=True)
class CartCheckedOut(DomainEvent):
    event_type = "aggregate_scenarios.cart_checked_out"

    cart_id: int


class Cart(EventRecorder):
    """An aggregate that is not a model: it guards its rule and records what happened."""

    def __init__(self, cart_id: int) -> None:
        self.cart_id = cart_id
        self.checked_out = False

    def check_out(self) -> None:
        if self.checked_out:
            raise ValueError(f"Cart {self.cart_id} is already checked out.")
        self.checked_out = True
        self.record_event(CartCheckedOut(cart_id=self.cart_id))


class Boom(Exception):
    pass


def stored() -> list[int]:
    """The cart ids of the stored events."""
    return [row["cart_id"] for row in OutboxEvent.objects.values_list("payload", flat=True)]


def the_seed_aspect_publishes_after_returning_and_clears_after() -> None:
    # seeds/003, "Aspects": after_returning() publishes the domain events of the collected
    # aggregates; after() clears the collector once the transaction is complete.
    got: list[CartCheckedOut] = []
    receiver(CartCheckedOut, dispatcher="sync", name="scenarios.confirm")(got.append)

    with UnitOfWork() as uow:
        cart = uow.add(Cart(1))
        cart.check_out()
        assert stored() == []  # published when the block returns

    assert stored() == [1]
    assert cart.recorded_events == ()
    assert got == [CartCheckedOut(cart_id=1)]
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


def inside_a_transaction_events_stay_recorded_until_the_outer_commit() -> None:
    with transaction.atomic():
        with UnitOfWork() as uow:
            cart = uow.add(Cart(2))
            cart.check_out()
        assert stored() == [2]
        assert cart.recorded_events == (CartCheckedOut(cart_id=2),)

    assert cart.recorded_events == ()
    assert stored() == [2]


def an_outer_rollback_keeps_the_events_so_a_retry_publishes_them() -> None:
    cart = Cart(3)
    cart.check_out()
    try:
        with transaction.atomic():
            with UnitOfWork() as uow:
                uow.add(cart)
            assert stored() == [3]
            raise Boom
    except Boom:
        pass

    assert stored() == []
    assert cart.recorded_events == (CartCheckedOut(cart_id=3),)

    with UnitOfWork() as retry:
        retry.add(cart)

    assert stored() == [3]
    assert cart.recorded_events == ()


def a_failed_unit_of_work_in_a_savepoint_publishes_nothing_and_keeps_its_events() -> None:
    cart = Cart(4)
    with transaction.atomic():
        try:
            with UnitOfWork() as uow:
                uow.add(cart).check_out()
                raise Boom
        except Boom:
            pass
        assert stored() == []
        assert cart.recorded_events == (CartCheckedOut(cart_id=4),)
        with UnitOfWork() as retry:
            retry.add(cart)
        assert stored() == [4]

    assert stored() == [4]
    assert cart.recorded_events == ()


def a_savepoint_rolled_back_after_the_unit_of_work_lets_a_later_one_publish_again() -> None:
    cart = Cart(5)
    cart.check_out()
    with transaction.atomic():
        try:
            with transaction.atomic():
                with UnitOfWork() as uow:
                    uow.add(cart)
                assert stored() == [5]
                raise Boom
        except Boom:
            pass
        assert stored() == []
        with UnitOfWork() as again:
            again.add(cart)

    assert stored() == [5]
    assert cart.recorded_events == ()


def two_units_of_work_in_one_transaction_publish_an_event_once() -> None:
    cart = Cart(6)
    cart.check_out()
    with transaction.atomic():
        with UnitOfWork() as first:
            first.add(cart)
        with UnitOfWork() as second:
            second.add(cart)
        assert stored() == [6]

    assert stored() == [6]
    assert cart.recorded_events == ()
