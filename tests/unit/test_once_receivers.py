"""``@receiver(..., once=True)``: only the first event a receiver matches gets a delivery."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings

from django_domain_events import (
    NamedEvent,
    handles,
    publish,
    publish_many,
    receiver,
    receiver_class,
)
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, OnceReceiverClaim, OutboxEvent

transactional = pytest.mark.django_db(transaction=True)
deferred = override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"})


def delivered_to(name: str) -> list[object]:
    return list(
        Delivery.objects.filter(receiver=name)
        .order_by("event_id")
        .values_list("event_id", flat=True)
    )


@transactional
def test_only_the_first_event_gets_a_delivery_and_the_claim_names_it(
    receiver_registry: Registry,
) -> None:
    got: list[NamedEvent] = []
    receiver("unit_once.signed_up", name="unit.once.welcome", once=True)(got.append)
    receiver("unit_once.signed_up", name="unit.once.every")(print)

    first = publish("unit_once.signed_up", {"n": 1})
    publish("unit_once.signed_up", {"n": 2})
    with transaction.atomic():
        publish("unit_once.signed_up", {"n": 3})

    assert delivered_to("unit.once.welcome") == [first]
    assert len(delivered_to("unit.once.every")) == 3
    assert [event.payload for event in got] == [{"n": 1}]
    claim = OnceReceiverClaim.objects.get()
    assert (claim.receiver, claim.event_id) == ("unit.once.welcome", first)
    # Every event is still recorded: the outbox is the audit trail.
    assert OutboxEvent.objects.count() == 3


@pytest.mark.django_db
@deferred
def test_publish_many_delivers_the_first_matching_event_of_the_batch_only(
    receiver_registry: Registry,
) -> None:
    receiver("unit_once.signed_up", name="unit.once.welcome", once=True)(print)

    ids = publish_many(
        [
            NamedEvent("unit_once.other", {}),
            NamedEvent("unit_once.signed_up", {"n": 1}),
            NamedEvent("unit_once.signed_up", {"n": 2}),
        ]
    )

    assert delivered_to("unit.once.welcome") == [ids[1]]


@transactional
@deferred
def test_a_rolled_back_publish_does_not_use_the_receivers_one_delivery(
    receiver_registry: Registry,
) -> None:
    receiver("unit_once.signed_up", name="unit.once.welcome", once=True)(print)

    with transaction.atomic():
        publish("unit_once.signed_up", {"n": 1})
        transaction.set_rollback(True)
    with transaction.atomic():
        try:
            with transaction.atomic():
                publish("unit_once.signed_up", {"n": 2})
                raise RuntimeError("savepoint rolled back")
        except RuntimeError:
            pass
    third = publish("unit_once.signed_up", {"n": 3})
    publish("unit_once.signed_up", {"n": 4})

    assert delivered_to("unit.once.welcome") == [third]
    assert OnceReceiverClaim.objects.get().event_id == third


@pytest.mark.django_db
@deferred
def test_a_once_wildcard_receiver_gets_the_first_event_of_any_matched_type(
    receiver_registry: Registry,
) -> None:
    receiver("unit_once.*", name="unit.once.first_of_any", once=True)(print)

    publish("unit_other.thing", {})
    first = publish("unit_once.b", {})
    publish("unit_once.a", {})

    assert delivered_to("unit.once.first_of_any") == [first]


@pytest.mark.django_db
@deferred
def test_each_once_receiver_has_its_own_claim(receiver_registry: Registry) -> None:
    receiver("unit_once.a", name="unit.once.on_a", once=True)(print)

    @receiver_class
    class Greeter:
        @handles("unit_once.b", name="unit.once.on_b", once=True)
        def greet(self, event: object) -> None: ...

    a = publish("unit_once.a", {})
    b = publish("unit_once.b", {})
    publish("unit_once.a", {})
    publish("unit_once.b", {})

    assert delivered_to("unit.once.on_a") == [a]
    assert delivered_to("unit.once.on_b") == [b]
    assert set(OnceReceiverClaim.objects.values_list("receiver", flat=True)) == {
        "unit.once.on_a",
        "unit.once.on_b",
    }


@pytest.mark.django_db
@deferred
def test_deleting_the_claim_lets_the_next_event_through(receiver_registry: Registry) -> None:
    receiver("unit_once.a", name="unit.once.on_a", once=True)(print)
    publish("unit_once.a", {})

    OnceReceiverClaim.objects.filter(receiver="unit.once.on_a").delete()
    again = publish("unit_once.a", {})

    assert delivered_to("unit.once.on_a")[-1] == again
    assert len(delivered_to("unit.once.on_a")) == 2


def test_once_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match=r"@receiver\(once='yes'\): give True or False"):
        receiver("unit_once.a", once="yes")(print)  # type: ignore[arg-type]
