"""Collect then apply, from seed 004: ``collect_events(commit=False)`` previews the receivers
declared with ``dry_run=True`` (called with ``commit=False``, nothing written), and
``collect()`` returns the would-be side effects for inspection."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from django_domain_events import DomainEvent, Envelope, collect_events, publish, receiver
from django_domain_events.checks import check_receivers
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.testapp.models import Effect

transactional = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class InvoiceSent(DomainEvent):
    event_type = "unit_seed_collect.invoice_sent"

    invoice_id: int


sent: list[int] = []


@pytest.fixture(autouse=True)
def nothing_sent() -> None:
    sent.clear()


def declare_my_event_handler() -> None:
    # seeds/004, CommittableFunction: "def my_event_handler(event: Event, commit: bool)",
    # called as func(commit=True); here the event comes first and commit is keyword-only.
    @receiver(InvoiceSent, dispatcher="sync", dry_run=True, name="unit.seed.my_event_handler")
    def my_event_handler(event: InvoiceSent, *, commit: bool) -> str:
        if commit:
            sent.append(event.invoice_id)
        return f"email for invoice {event.invoice_id}"


def process_one() -> None:
    publish(InvoiceSent(invoice_id=1))


def process_two() -> None:
    publish(InvoiceSent(invoice_id=2))


@transactional
def test_the_seed_example_collect_then_apply(receiver_registry: Registry) -> None:
    declare_my_event_handler()

    # seeds/004: event_bus = DelayedEventBus(MyEventBus()); process_one(event_bus);
    # process_two(event_bus); "At this point the events have not actually been applied".
    with collect_events(commit=False) as collected:
        process_one()
        process_two()

    assert sent == []
    assert not OutboxEvent.objects.exists()
    assert [(effect.delivery.receiver, result) for effect, result in collected.previews] == [
        ("unit.seed.my_event_handler", "email for invoice 1"),
        ("unit.seed.my_event_handler", "email for invoice 2"),
    ]
    effects = collected.collect()
    assert [effect.event for effect in effects] == [InvoiceSent(1), InvoiceSent(2)]
    assert all(effect.supports_dry_run for effect in effects)
    assert effects[0].preview() == "email for invoice 1"

    # "To apply them all at once: event_bus.apply_without_delay(commit=...)".
    with transaction.atomic(), collect_events(commit=True) as applied:
        process_one()
        process_two()
        assert sent == []

    assert sent == [1, 2]
    assert applied.previews == ()
    assert [effect.delivery.state for effect in applied.collect()] == ["pending", "pending"]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@transactional
def test_only_receivers_that_declare_a_dry_run_are_previewed(receiver_registry: Registry) -> None:
    plain: list[InvoiceSent] = []
    receiver(InvoiceSent, dispatcher="sync", name="unit.seed.plain")(plain.append)
    declare_my_event_handler()

    with collect_events(commit=False) as collected:
        process_one()

    assert plain == []
    assert [effect.delivery.receiver for effect, _result in collected.previews] == [
        "unit.seed.my_event_handler"
    ]
    by_name = {effect.delivery.receiver: effect for effect in collected.collect()}
    assert by_name["unit.seed.plain"].supports_dry_run is False
    with pytest.raises(TypeError, match=r"'unit.seed.plain' does not support a dry run"):
        by_name["unit.seed.plain"].preview()


@transactional
def test_a_preview_that_writes_by_mistake_is_rolled_back(receiver_registry: Registry) -> None:
    @receiver(InvoiceSent, dry_run=True, name="unit.seed.careless")
    def careless(event: InvoiceSent, *, commit: bool, envelope: Envelope) -> None:
        Effect.objects.create(receiver="careless", event_id=envelope.event_id)

    with transaction.atomic(), collect_events(commit=False) as collected:
        process_one()

    assert len(collected.previews) == 1
    assert not Effect.objects.exists()
    assert not OutboxEvent.objects.exists()


@transactional
def test_async_dry_run_receivers_are_previewed_too(receiver_registry: Registry) -> None:
    seen: list[tuple[int, bool]] = []

    @receiver(InvoiceSent, dry_run=True, name="unit.seed.async")
    async def preview_async(event: InvoiceSent, *, commit: bool) -> int:
        await sync_to_async(seen.append)((event.invoice_id, commit))
        return event.invoice_id

    with collect_events(commit=False) as collected:
        process_two()

    assert seen == [(2, False)]
    assert [result for _effect, result in collected.previews] == [2]


def test_a_dry_run_receiver_passes_the_signature_checks(receiver_registry: Registry) -> None:
    declare_my_event_handler()

    assert check_receivers() == []


@transactional
def test_a_dry_run_receiver_delivered_by_the_outbox_gets_commit_true(
    receiver_registry: Registry,
) -> None:
    declare_my_event_handler()

    process_one()

    assert sent == [1]


def test_a_dry_run_receiver_without_a_commit_argument_is_a_check_error(
    receiver_registry: Registry,
) -> None:
    def no_commit(event: InvoiceSent) -> None: ...

    receiver(InvoiceSent, dry_run=True, name="unit.seed.no_commit_def")(no_commit)

    [error] = check_receivers()

    assert error.id == "django_domain_events.E009"
    assert "'unit.seed.no_commit_def'" in error.msg
    assert "commit as a keyword" in error.msg
    assert error.hint is not None
    assert "(event, *, commit)" in error.hint
