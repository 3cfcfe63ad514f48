"""Integration events of seed 003, completed: handed to a transport that is not Celery (the
relay's ``"deferred"``, ``django.tasks``), and refused on ``"sync"`` at start-up unless the
receiver says ``allow_sync=True``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import transaction

from django_domain_events import (
    DomainEvent,
    IntegrationEvent,
    handles,
    publish,
    receiver,
    receiver_class,
)
from django_domain_events.checks import check_integration_events
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState

transactional = pytest.mark.django_db(transaction=True)

handled: list[Any] = []


@dataclass(frozen=True)
class UserCreatedEvent(IntegrationEvent):
    event_type = "unit_seed_integration.user_created"

    user_id: int
    email: str


def declare_the_seed_handler(dispatcher: str) -> type:
    # seeds/003, "Stereotype":
    #   @EventHandler() class UserEventHandler:
    #       @on_event(UserCreatedEvent) async def handle_user_created(self, event: UserCreatedEvent)
    #       -> None: # Handle event pass
    @receiver_class
    class UserEventHandler:
        @handles(UserCreatedEvent, dispatcher=dispatcher)
        async def handle_user_created(self, event: UserCreatedEvent) -> None:
            # Handle event
            handled.append(event)

    return UserEventHandler


@pytest.fixture(autouse=True)
def nothing_handled() -> None:
    handled.clear()


# A transport without Celery ------------------------------------------------------------------


@transactional
def test_the_seed_handler_of_an_integration_event_runs_on_the_relay_transport(
    receiver_registry: Registry,
) -> None:
    declare_the_seed_handler("deferred")
    sent = UserCreatedEvent(user_id=1, email="ada@example.com")

    with transaction.atomic():
        publish(sent)
    # Not in the publishing process: the relay is the transport.
    assert handled == []
    assert Delivery.objects.get().state == DeliveryState.PENDING

    totals = Relay(grace=0).run_pass()

    assert totals.delivered == 1
    assert handled == [sent]
    assert handled[0] is not sent  # decoded from the stored row, as another service would
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert check_integration_events() == []


@transactional
def test_the_seed_handler_of_an_integration_event_runs_on_django_tasks(
    receiver_registry: Registry,
) -> None:
    pytest.importorskip("django.tasks", reason="the django.tasks dispatcher needs Django 6")
    declare_the_seed_handler("tasks")
    sent = UserCreatedEvent(user_id=2, email="grace@example.com")

    # The test settings' default task backend is Django's immediate one: the task runs as soon
    # as it is enqueued, on commit.
    with transaction.atomic():
        publish(sent)
        assert handled == []

    assert handled == [sent]
    assert handled[0] is not sent
    delivery = Delivery.objects.get()
    assert (delivery.dispatcher, delivery.state) == ("tasks", DeliveryState.DELIVERED)
    assert check_integration_events() == []


# "sync" refused at start-up unless allowed ----------------------------------------------------


@pytest.mark.django_db(databases="__all__")  # the check command asks every database
def test_a_sync_receiver_of_an_integration_event_stops_start_up(
    receiver_registry: Registry,
) -> None:
    declare_the_seed_handler("sync")

    with pytest.raises(SystemCheckError, match=r"django_domain_events\.E012"):
        call_command("check")


@pytest.mark.django_db(databases="__all__")  # the check command asks every database
def test_allow_sync_lets_a_receiver_of_an_integration_event_run_in_process(
    receiver_registry: Registry,
) -> None:
    receiver(UserCreatedEvent, dispatcher="sync", allow_sync=True, name="unit.seed.sync")(print)
    receiver(UserCreatedEvent, allow_sync=True, name="unit.seed.default")(print)

    assert check_integration_events() == []
    call_command("check")


@transactional
def test_an_allowed_sync_receiver_gets_the_event_decoded_after_commit(
    receiver_registry: Registry,
) -> None:
    receiver(UserCreatedEvent, dispatcher="sync", allow_sync=True, name="unit.seed.sync")(
        handled.append
    )
    sent = UserCreatedEvent(user_id=3, email="alan@example.com")

    with transaction.atomic():
        publish(sent)
        assert handled == []

    assert handled == [sent]
    assert handled[0] is not sent


def test_the_e012_hint_names_allow_sync(receiver_registry: Registry) -> None:
    receiver(UserCreatedEvent, dispatcher="sync", name="unit.seed.sync")(print)

    [error] = check_integration_events()

    assert error.is_serious()
    assert error.hint is not None
    assert "allow_sync=True" in error.hint


@pytest.mark.usefixtures("disposable_classes")
def test_allow_sync_and_dry_run_must_be_booleans() -> None:
    @dataclass(frozen=True)
    class Unused(DomainEvent):
        event_type = "unit_seed_integration.unused"

    with pytest.raises(ValueError, match=r"allow_sync='yes'\): give True or False"):
        receiver(Unused, allow_sync="yes")(print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dry_run=1\): give True or False"):
        receiver(Unused, dry_run=1)(print)  # type: ignore[arg-type]
