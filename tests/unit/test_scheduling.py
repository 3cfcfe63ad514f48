"""Scheduled delivery: publish with a due time or a delay, per-receiver delays, the relay running
due ones only, and a receiver answering ``NotYet`` without spending an attempt."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from django_domain_events import (
    Emitter,
    Envelope,
    NamedEvent,
    NotYet,
    ScheduleError,
    apublish,
    publish,
    publish_many,
    receiver,
)
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.delivery.runner import Outcome, owed_delivery, run_delivery
from django_domain_events.models import Delivery, DeliveryAttempt, DeliveryState
from tests.unit.recording import RecordingDispatcher

pytestmark = pytest.mark.django_db(transaction=True)

REMINDED = "unit_scheduling.reminded"
RECORD = "unit_scheduling.record"


@pytest.fixture
def runs(receiver_registry: Registry) -> list[tuple[Any, int]]:
    """A sync receiver of ``REMINDED`` recording (payload, attempt) per run; a payload with
    ``"not_yet"`` makes it answer ``NotYet`` with that many seconds, once."""
    seen: list[tuple[Any, int]] = []

    @receiver(REMINDED, name=RECORD)
    def record(event: NamedEvent, envelope: Envelope) -> None:
        seen.append((event.payload, envelope.attempt))
        wait = event.payload.get("not_yet")
        if wait is not None and len(seen) == 1:
            raise NotYet(delay=dt.timedelta(seconds=wait), reason="stock not in")

    return seen


def make_due(**filters: Any) -> None:
    """Move the due time of the scheduled deliveries into the past, as time going by would."""
    Delivery.objects.filter(state=DeliveryState.SCHEDULED, **filters).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def the_delivery() -> Delivery:
    return Delivery.objects.get(receiver=RECORD)


# Publishing with a due time ----------------------------------------------------------------


def test_a_delayed_publish_is_written_scheduled_and_not_run_at_commit(runs: list[Any]) -> None:
    before = timezone.now()
    with transaction.atomic():
        publish(REMINDED, {"n": 1}, delay=dt.timedelta(hours=1))

    delivery = the_delivery()
    assert runs == []
    assert delivery.state == DeliveryState.SCHEDULED
    assert delivery.next_attempt_at is not None
    assert before + dt.timedelta(hours=1) <= delivery.next_attempt_at
    assert (delivery.dispatched_at, delivery.task_id, delivery.attempts) == (None, "", 0)


def test_deliver_at_is_the_due_time(runs: list[Any]) -> None:
    due = timezone.now() + dt.timedelta(days=2)

    publish(REMINDED, {}, deliver_at=due)

    assert (the_delivery().state, the_delivery().next_attempt_at) == (DeliveryState.SCHEDULED, due)


def test_a_due_time_in_the_past_is_due_now(runs: list[Any]) -> None:
    publish(REMINDED, {"n": 1}, deliver_at=timezone.now() - dt.timedelta(hours=1))

    assert runs == [({"n": 1}, 1)]
    assert the_delivery().state == DeliveryState.DELIVERED


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"deliver_at": timezone.now(), "delay": dt.timedelta(seconds=1)},
            "publish(): give deliver_at or delay, not both.",
        ),
        ({"deliver_at": dt.datetime(2030, 1, 1)}, "is naive; give an aware datetime"),
        ({"deliver_at": "tomorrow"}, "is a str; give an aware datetime"),
        ({"delay": 5}, "is a int; give a timedelta"),
        ({"delay": dt.timedelta(seconds=-1)}, "is negative; give a timedelta >= 0"),
    ],
)
def test_bad_due_times_raise_before_anything_is_written(
    runs: list[Any], arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        publish(REMINDED, {}, **arguments)

    assert not Delivery.objects.exists()


def test_publish_many_emitter_and_apublish_pass_the_due_time_on(runs: list[Any]) -> None:
    later = dt.timedelta(minutes=5)

    publish_many([NamedEvent(REMINDED, {"n": 1}), NamedEvent(REMINDED, {"n": 2})], delay=later)
    Emitter().publish(REMINDED, {"n": 3}, delay=later)
    # From this thread, so apublish()'s database work runs on its connection too.
    async_to_sync(apublish)(REMINDED, {"n": 4}, delay=later)

    assert runs == []
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SCHEDULED}
    assert Delivery.objects.count() == 4


def test_a_receiver_delay_schedules_only_its_own_deliveries(receiver_registry: Registry) -> None:
    got: list[str] = []
    receiver(REMINDED, name="unit_scheduling.now")(lambda event: got.append("now"))
    receiver(REMINDED, name="unit_scheduling.later", delay=dt.timedelta(minutes=10))(
        lambda event: got.append("later")
    )

    publish(REMINDED, {})

    assert got == ["now"]
    assert dict(Delivery.objects.values_list("receiver", "state")) == {
        "unit_scheduling.now": DeliveryState.DELIVERED,
        "unit_scheduling.later": DeliveryState.SCHEDULED,
    }


def test_a_publish_due_time_overrides_the_receiver_delay(receiver_registry: Registry) -> None:
    receiver(REMINDED, name=RECORD, delay=dt.timedelta(minutes=10))(lambda event: None)
    due = timezone.now() + dt.timedelta(days=1)

    publish(REMINDED, {}, deliver_at=due)

    assert the_delivery().next_attempt_at == due


@pytest.mark.parametrize("delay", [5, dt.timedelta(seconds=-5)])
def test_a_bad_receiver_delay_is_refused_at_declaration(
    receiver_registry: Registry, delay: Any
) -> None:
    with pytest.raises(ScheduleError, match=r"@receiver\(delay=\.\.\.\)"):
        receiver(REMINDED, name=RECORD, delay=delay)(lambda event: None)


# The relay runs due ones ------------------------------------------------------------------


def test_the_relay_leaves_a_scheduled_delivery_alone_until_it_is_due(runs: list[Any]) -> None:
    publish(REMINDED, {"n": 1}, delay=dt.timedelta(hours=1))

    assert Relay().run_pass().claimed == 0
    assert runs == []

    make_due()
    totals = Relay().run_pass()

    assert (totals.claimed, totals.delivered) == (1, 1)
    assert runs == [({"n": 1}, 1)]
    assert the_delivery().state == DeliveryState.DELIVERED


def test_a_due_scheduled_delivery_goes_to_its_dispatcher(receiver_registry: Registry) -> None:
    receiver(
        REMINDED,
        name=RECORD,
        dispatcher="tests.unit.recording.RecordingDispatcher",
        delay=dt.timedelta(hours=1),
    )(lambda event: None)
    publish(REMINDED, {})
    assert RecordingDispatcher.calls == []

    make_due()
    totals = Relay().run_pass()

    assert totals.sent == 1
    [[sent]] = RecordingDispatcher.calls
    assert sent.delivery_id == the_delivery().pk
    assert the_delivery().state == DeliveryState.DISPATCHED


def test_a_scheduled_delivery_does_not_run_when_a_task_for_it_arrives(runs: list[Any]) -> None:
    publish(REMINDED, {}, delay=dt.timedelta(hours=1))

    assert run_delivery(owed_delivery(the_delivery(), "default")) is Outcome.SKIPPED
    assert runs == []
    assert the_delivery().state == DeliveryState.SCHEDULED


# NotYet -----------------------------------------------------------------------------------


def test_not_yet_schedules_the_delivery_again_without_spending_an_attempt(
    runs: list[Any],
) -> None:
    before = timezone.now()

    publish(REMINDED, {"not_yet": 600})

    delivery = the_delivery()
    assert delivery.state == DeliveryState.SCHEDULED
    assert delivery.attempts == 0
    assert delivery.next_attempt_at is not None
    assert before + dt.timedelta(seconds=600) <= delivery.next_attempt_at
    assert delivery.last_error == ""
    assert not DeliveryAttempt.objects.exists()

    make_due()
    totals = Relay().run_pass()

    assert totals.delivered == 1
    assert [attempt for _, attempt in runs] == [1, 1]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 1)


def test_not_yet_through_the_relay_is_counted_as_scheduled(runs: list[Any]) -> None:
    publish(REMINDED, {"not_yet": 60}, deliver_at=timezone.now() + dt.timedelta(hours=1))
    make_due()

    totals = Relay().run_pass()

    assert (totals.claimed, totals.scheduled, totals.delivered) == (1, 1, 0)
    delivery = the_delivery()
    assert (delivery.state, delivery.attempts, delivery.claimed_by) == (
        DeliveryState.SCHEDULED,
        0,
        "",
    )


def test_not_yet_at_a_time_in_the_past_is_due_at_once(receiver_registry: Registry) -> None:
    @receiver(REMINDED, name=RECORD)
    def record(event: NamedEvent) -> None:
        raise NotYet(at=timezone.now() - dt.timedelta(days=1))

    publish(REMINDED, {})

    assert Delivery.objects.scheduled_due().count() == 1


def test_not_yet_refuses_bad_values() -> None:
    with pytest.raises(ScheduleError, match=r"NotYet: give at or delay, not both\."):
        NotYet(at=timezone.now(), delay=dt.timedelta(seconds=1))
    with pytest.raises(ScheduleError, match="is naive"):
        NotYet(at=dt.datetime(2030, 1, 1))


def test_an_async_receiver_can_answer_not_yet(receiver_registry: Registry) -> None:
    @receiver(REMINDED, name=RECORD)
    async def record(event: NamedEvent) -> None:
        raise NotYet(delay=dt.timedelta(minutes=1))

    publish(REMINDED, {})

    assert (the_delivery().state, the_delivery().attempts) == (DeliveryState.SCHEDULED, 0)


# Ordering --------------------------------------------------------------------------------


def test_a_scheduled_ordered_delivery_holds_its_line_until_it_runs(
    receiver_registry: Registry,
) -> None:
    got: list[int] = []
    receiver(REMINDED, name=RECORD, ordered=True)(lambda event: got.append(event.payload["n"]))

    publish(REMINDED, {"n": 1}, ordering_key="k", delay=dt.timedelta(hours=1))
    publish(REMINDED, {"n": 2}, ordering_key="k")

    assert got == []
    states = dict(Delivery.objects.values_list("event__payload__n", "state"))
    assert states == {1: DeliveryState.SCHEDULED, 2: DeliveryState.WAITING}

    make_due()
    Relay().run_pass()

    assert got == [1, 2]


def test_a_waiting_delivery_with_a_due_time_to_come_is_released_as_scheduled(
    receiver_registry: Registry,
) -> None:
    got: list[int] = []
    receiver(REMINDED, name=RECORD, ordered=True)(lambda event: got.append(event.payload["n"]))
    publish(REMINDED, {"n": 1}, ordering_key="k", delay=dt.timedelta(hours=1))
    publish(REMINDED, {"n": 2}, ordering_key="k", delay=dt.timedelta(hours=2))

    make_due(event__payload__n=1)
    Relay().run_pass()

    assert got == [1]
    second = Delivery.objects.get(event__payload__n=2)
    assert second.state == DeliveryState.SCHEDULED
    assert second.next_attempt_at is not None
    assert second.next_attempt_at > timezone.now() + dt.timedelta(minutes=90)
