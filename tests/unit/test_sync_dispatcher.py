"""The sync dispatcher and what running a delivery records: receivers run after commit, failures
are kept with their error and retried, signals and logs report it all, and dispatchers are
chosen from settings."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events import (
    Dispatcher,
    Envelope,
    GiveUp,
    OwedDelivery,
    RetryAfter,
    apublish,
    current_envelope,
    publish,
    receiver,
    signals,
)
from django_domain_events.declaration.registry import Receiver, Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.testing import drain
from tests.testapp.events import Pinged, Ponged
from tests.testapp.models import Effect, Order

pytestmark = pytest.mark.django_db(transaction=True)

LOGGER = "django_domain_events"
RECORDING = "tests.unit.test_sync_dispatcher.RecordingDispatcher"
EXPLODING = "tests.unit.test_sync_dispatcher.ExplodingDispatcher"


class RecordingDispatcher(Dispatcher):
    """Keeps what it is handed, and runs nothing."""

    handed: ClassVar[list[tuple[str, list[OwedDelivery]]]] = []

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        RecordingDispatcher.handed.append((self.name, list(deliveries)))


class ExplodingDispatcher(Dispatcher):
    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        raise ConnectionError("broker unreachable")


@pytest.fixture(autouse=True)
def _forget_recorded() -> Iterator[None]:
    RecordingDispatcher.handed.clear()
    yield
    RecordingDispatcher.handed.clear()


@pytest.fixture
def sent() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(signal name, keyword arguments) of every signal the app sent during the test."""
    log: list[tuple[str, dict[str, Any]]] = []
    names = ("event_published", "delivery_succeeded", "delivery_failed", "delivery_dead")
    listeners = []
    for name in names:

        def listener(sender: type, *, _name: str = name, **kwargs: Any) -> None:
            log.append((_name, {"sender": sender, **kwargs}))

        getattr(signals, name).connect(listener, weak=False)
        listeners.append((name, listener))
    try:
        yield log
    finally:
        for name, listener in listeners:
            getattr(signals, name).disconnect(listener)


def only_delivery(name: str) -> Delivery:
    return Delivery.objects.get(receiver=name)


# When and with what a receiver runs -----------------------------------------------------------


def test_receiver_runs_after_commit_in_a_transaction_of_its_own(
    receiver_registry: Registry,
) -> None:
    seen: list[tuple[bool, list[Any]]] = []

    @receiver(Pinged, name="unit.sync.check_order")
    def check_order(event: Pinged) -> None:
        seen.append((Order.objects.filter(pk=event.n).exists(), list(connection.savepoint_ids)))

    with transaction.atomic():
        order = Order.objects.create(total=Decimal("2.50"))
        publish(Pinged(n=order.pk))
        with transaction.atomic():
            publish(Pinged(n=order.pk))
        assert seen == []

    # No savepoint: the receiver's atomic block is outermost, not nested in the caller's.
    assert seen == [(True, []), (True, [])]


def test_receiver_gets_the_typed_event_and_its_envelope(receiver_registry: Registry) -> None:
    seen: list[tuple[Pinged, Envelope, Envelope | None]] = []

    @receiver(Pinged, name="unit.sync.envelope")
    def record(event: Pinged, envelope: Envelope) -> None:
        seen.append((event, envelope, current_envelope()))

    before = timezone.now()
    event_id = publish(Pinged(n=4))

    [(event, envelope, current)] = seen
    assert type(event) is Pinged
    assert event == Pinged(n=4)
    row = OutboxEvent.objects.get()
    delivery = Delivery.objects.get()
    assert envelope == Envelope(
        event_id=event_id,
        event_type="testapp.Pinged",
        version=1,
        occurred_at=row.occurred_at,
        correlation_id=str(event_id),
        causation_id=None,
        delivery_id=delivery.pk,
        receiver="unit.sync.envelope",
        attempt=1,
    )
    assert before <= envelope.occurred_at <= timezone.now()
    assert current == envelope
    assert current_envelope() is None


def test_receiver_without_an_envelope_parameter_still_sees_current_envelope(
    receiver_registry: Registry,
) -> None:
    seen: list[Envelope | None] = []

    @receiver(Pinged, name="unit.sync.no_envelope")
    def record(event: Pinged) -> None:
        seen.append(current_envelope())

    event_id = publish(Pinged(n=1))

    [envelope] = seen
    assert envelope is not None
    assert (envelope.event_id, envelope.receiver, envelope.attempt) == (
        event_id,
        "unit.sync.no_envelope",
        1,
    )


# Failures -------------------------------------------------------------------------------------


def test_a_failing_receiver_is_recorded_and_never_raises_into_the_caller(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    delivered: list[Pinged] = []

    @receiver(Pinged, name="unit.sync.declines")
    def declines(event: Pinged) -> None:
        raise ValueError(f"card {event.n} declined")

    @receiver(Pinged, name="unit.sync.after")
    def after(event: Pinged) -> None:
        delivered.append(event)

    before = timezone.now()
    with transaction.atomic():
        publish(Pinged(n=9))
    after_commit = timezone.now()

    failed = only_delivery("unit.sync.declines")
    assert failed.state == DeliveryState.FAILED
    assert failed.attempts == 1
    assert failed.last_error == "ValueError: card 9 declined"
    assert 'raise ValueError(f"card {event.n} declined")' in failed.traceback
    assert failed.traceback.rstrip().endswith("ValueError: card 9 declined")
    assert failed.delivered_at is None
    assert failed.last_attempt_at is not None
    assert before <= failed.last_attempt_at <= after_commit
    # Backoff for attempt 1 is at most RETRY_BASE_DELAY (2 s by default).
    assert failed.next_attempt_at is not None
    assert failed.last_attempt_at <= failed.next_attempt_at
    assert failed.next_attempt_at <= after_commit + dt.timedelta(seconds=2)
    assert delivered == [Pinged(n=9)]
    assert only_delivery("unit.sync.after").state == DeliveryState.DELIVERED
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert "unit.sync.declines" in record.getMessage()
    assert "ValueError: card 9 declined" in record.getMessage()


def test_failed_receivers_work_is_rolled_back_and_a_successful_one_commits_with_its_mark(
    receiver_registry: Registry,
) -> None:
    @receiver(Pinged, name="unit.sync.writes_then_fails")
    def writes_then_fails(event: Pinged, envelope: Envelope) -> None:
        Effect.objects.create(receiver="fails", event_id=envelope.event_id)
        raise RuntimeError("after the write")

    @receiver(Pinged, name="unit.sync.writes")
    def writes(event: Pinged, envelope: Envelope) -> None:
        Effect.objects.create(receiver="writes", event_id=envelope.event_id)

    event_id = publish(Pinged(n=1))

    assert list(Effect.objects.values_list("receiver", "event_id")) == [("writes", event_id)]
    assert only_delivery("unit.sync.writes").state == DeliveryState.DELIVERED
    assert only_delivery("unit.sync.writes_then_fails").state == DeliveryState.FAILED


def test_a_retried_receiver_leaves_its_effect_exactly_once(receiver_registry: Registry) -> None:
    @receiver(Pinged, name="unit.sync.flaky")
    def flaky(event: Pinged, envelope: Envelope) -> None:
        Effect.objects.create(
            receiver="flaky", event_id=envelope.event_id, attempt=envelope.attempt
        )
        if envelope.attempt == 1:
            raise ConnectionError("timed out")

    publish(Pinged(n=1))
    assert not Effect.objects.exists()

    assert drain().delivered == 1

    assert list(Effect.objects.values_list("attempt", flat=True)) == [2]
    delivery = only_delivery("unit.sync.flaky")
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 2)
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None


def test_events_published_by_a_failing_receiver_are_never_published(
    receiver_registry: Registry,
) -> None:
    ponged: list[Ponged] = []

    @receiver(Pinged, name="unit.sync.pongs_then_fails")
    def pongs_then_fails(event: Pinged) -> None:
        publish(Ponged(n=event.n))
        raise RuntimeError("after publishing")

    receiver(Ponged, name="unit.sync.ponged")(ponged.append)

    publish(Pinged(n=1))

    assert ponged == []
    assert not OutboxEvent.objects.filter(event_type=Ponged.event_type).exists()


def test_retry_after_sets_the_next_attempt(
    receiver_registry: Registry, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    @receiver(Pinged, name="unit.sync.rate_limited")
    def rate_limited(event: Pinged) -> None:
        raise RetryAfter(30, "rate limited")

    before = timezone.now()
    publish(Pinged(n=1))
    after = timezone.now()

    delivery = only_delivery("unit.sync.rate_limited")
    assert delivery.state == DeliveryState.FAILED
    assert delivery.last_error == "RetryAfter: rate limited"
    assert delivery.next_attempt_at is not None
    assert (
        before + dt.timedelta(seconds=30)
        <= delivery.next_attempt_at
        <= after + dt.timedelta(seconds=30)
    )
    [failed] = [kwargs for name, kwargs in sent if name == "delivery_failed"]
    assert failed["retry_at"] == delivery.next_attempt_at
    assert isinstance(failed["exception"], RetryAfter)


def test_give_up_makes_the_delivery_dead_at_once(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    @receiver(Pinged, name="unit.sync.gives_up", max_attempts=10)
    def gives_up(event: Pinged) -> None:
        raise GiveUp("customer deleted")

    publish(Pinged(n=1))

    delivery = only_delivery("unit.sync.gives_up")
    assert delivery.state == DeliveryState.DEAD
    assert delivery.attempts == 1
    assert delivery.last_error == "GiveUp: customer deleted"
    assert delivery.next_attempt_at is None
    assert drain().total == 0
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert "dead" in record.getMessage()
    assert "unit.sync.gives_up" in record.getMessage()


def test_exhausting_max_attempts_makes_the_delivery_dead(receiver_registry: Registry) -> None:
    attempts: list[int] = []

    @receiver(Pinged, name="unit.sync.always_fails", max_attempts=3)
    def always_fails(event: Pinged, envelope: Envelope) -> None:
        attempts.append(envelope.attempt)
        raise LookupError("still missing")

    publish(Pinged(n=1))
    assert only_delivery("unit.sync.always_fails").state == DeliveryState.FAILED

    result = drain()

    assert (result.delivered, result.failed, result.dead) == (0, 1, 1)
    assert attempts == [1, 2, 3]
    delivery = only_delivery("unit.sync.always_fails")
    assert (delivery.state, delivery.attempts) == (DeliveryState.DEAD, 3)
    assert delivery.last_error == "LookupError: still missing"
    assert delivery.next_attempt_at is None


def test_a_receiver_removed_before_dispatch_makes_its_delivery_dead(
    receiver_registry: Registry,
    sent: list[tuple[str, dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[Pinged] = []
    receiver(Pinged, name="unit.sync.removed")(ran.append)

    with transaction.atomic():
        publish(Pinged(n=1))
        receiver_registry.unregister("unit.sync.removed")

    delivery = only_delivery("unit.sync.removed")
    assert delivery.state == DeliveryState.DEAD
    assert "'unit.sync.removed'" in delivery.last_error
    assert "registered" in delivery.last_error
    assert ran == []
    [dead] = [kwargs for name, kwargs in sent if name == "delivery_dead"]
    assert "'unit.sync.removed'" in dead["reason"]
    assert dead["receiver"] is None
    assert any(
        r.name == LOGGER and r.levelno == logging.ERROR and "unit.sync.removed" in r.getMessage()
        for r in caplog.records
    )


def test_dead_signal_for_a_removed_receiver_still_names_the_event(
    receiver_registry: Registry, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    # The event is in memory when the sync dispatcher runs the delivery: listeners filtering
    # on sender=Pinged must hear about its dead letters like about every other outcome.
    receiver(Pinged, name="unit.sync.gone")(lambda event: None)

    with transaction.atomic():
        event_id = publish(Pinged(n=5))
        receiver_registry.unregister("unit.sync.gone")

    [dead] = [kwargs for name, kwargs in sent if name == "delivery_dead"]
    assert dead["sender"] is Pinged
    assert dead["event"] == Pinged(n=5)
    assert dead["envelope"] is not None
    assert dead["envelope"].event_id == event_id


# async def receivers --------------------------------------------------------------------------


def test_async_receivers_run_under_the_sync_dispatcher(receiver_registry: Registry) -> None:
    seen: list[tuple[Pinged, int, Envelope | None]] = []

    @receiver(Pinged, name="unit.sync.async_record")
    async def record(event: Pinged, envelope: Envelope) -> None:
        await asyncio.sleep(0)
        seen.append((event, envelope.attempt, current_envelope()))

    @receiver(Pinged, name="unit.sync.async_orm")
    async def write(event: Pinged, envelope: Envelope) -> None:
        await sync_to_async(Effect.objects.create)(receiver="async", event_id=envelope.event_id)

    event_id = publish(Pinged(n=3))

    [(event, attempt, current)] = seen
    assert (event, attempt) == (Pinged(n=3), 1)
    assert current is not None
    assert current.event_id == event_id
    assert list(Effect.objects.values_list("receiver", "event_id")) == [("async", event_id)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


def test_async_receivers_run_when_published_from_async_code(
    receiver_registry: Registry,
) -> None:
    @receiver(Pinged, name="unit.sync.async_from_async")
    async def write(event: Pinged, envelope: Envelope) -> None:
        await sync_to_async(Effect.objects.create)(receiver="async", event_id=envelope.event_id)

    @receiver(Pinged, name="unit.sync.sync_from_async")
    def write_sync(event: Pinged, envelope: Envelope) -> None:
        Effect.objects.create(receiver="sync", event_id=envelope.event_id)

    async def handle_request() -> Any:
        return await apublish(Pinged(n=1))

    event_id = async_to_sync(handle_request)()

    assert sorted(Effect.objects.values_list("receiver", "event_id")) == [
        ("async", event_id),
        ("sync", event_id),
    ]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


def test_a_failing_async_receivers_orm_work_is_rolled_back(receiver_registry: Registry) -> None:
    @receiver(Pinged, name="unit.sync.async_fails")
    async def write_then_fail(event: Pinged, envelope: Envelope) -> None:
        await sync_to_async(Effect.objects.create)(receiver="async", event_id=envelope.event_id)
        raise ValueError("after the write")

    publish(Pinged(n=1))

    assert not Effect.objects.exists()
    delivery = only_delivery("unit.sync.async_fails")
    assert (delivery.state, delivery.last_error) == (
        DeliveryState.FAILED,
        "ValueError: after the write",
    )


# Signals and logging --------------------------------------------------------------------------


def test_event_published_is_sent_after_commit_and_never_for_a_rollback(
    receiver_registry: Registry, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    with transaction.atomic():
        kept = publish(Pinged(n=1))
        assert sent == []

    def publish_then_fail() -> None:
        with transaction.atomic():
            publish(Pinged(n=2))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        publish_then_fail()

    [(name, kwargs)] = sent
    assert name == "event_published"
    assert kwargs["sender"] is Pinged
    assert kwargs["event"] == Pinged(n=1)
    assert kwargs["envelope"].event_id == kept
    assert kwargs["using"] == "default"


def test_delivery_signals_report_each_outcome(
    receiver_registry: Registry, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    @receiver(Pinged, name="unit.sync.signal_ok")
    def ok(event: Pinged) -> None:
        pass

    @receiver(Pinged, name="unit.sync.signal_retry", max_attempts=2)
    def retry(event: Pinged) -> None:
        raise KeyError("nope")

    event_id = publish(Pinged(n=1))
    drain()

    delivery_signals = [(name, kwargs) for name, kwargs in sent if name != "event_published"]
    assert [(name, kwargs["receiver"].name) for name, kwargs in delivery_signals] == [
        ("delivery_succeeded", "unit.sync.signal_ok"),
        ("delivery_failed", "unit.sync.signal_retry"),
        ("delivery_dead", "unit.sync.signal_retry"),
    ]
    succeeded, failed, dead = (kwargs for _, kwargs in delivery_signals)
    assert succeeded["sender"] is Pinged
    assert succeeded["event"] == Pinged(n=1)
    assert succeeded["envelope"].event_id == event_id
    assert succeeded["envelope"].delivery_id == only_delivery("unit.sync.signal_ok").pk
    assert succeeded["using"] == "default"
    assert isinstance(succeeded["receiver"], Receiver)
    assert isinstance(failed["exception"], KeyError)
    assert isinstance(failed["retry_at"], dt.datetime)
    assert failed["envelope"].attempt == 1
    assert isinstance(dead["exception"], KeyError)
    assert dead["reason"] == "KeyError: 'nope'"
    assert dead["envelope"].attempt == 2


@pytest.mark.parametrize("signal_name", ["event_published", "delivery_succeeded"])
def test_a_raising_signal_listener_breaks_nothing_and_is_logged(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture, signal_name: str
) -> None:
    ran: list[Pinged] = []
    receiver(Pinged, name="unit.sync.listened")(ran.append)

    def broken_listener(sender: type, **kwargs: Any) -> None:
        raise RuntimeError("listener bug")

    signal = getattr(signals, signal_name)
    signal.connect(broken_listener, weak=False)
    try:
        event_id = publish(Pinged(n=1))
    finally:
        signal.disconnect(broken_listener)

    assert ran == [Pinged(n=1)]
    assert OutboxEvent.objects.get().id == event_id
    assert only_delivery("unit.sync.listened").state == DeliveryState.DELIVERED
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert "broken_listener" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


# Choosing dispatchers -------------------------------------------------------------------------


@override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"})
def test_deferred_dispatcher_leaves_deliveries_pending(receiver_registry: Registry) -> None:
    ran: list[Pinged] = []
    receiver(Pinged, name="unit.sync.deferred")(ran.append)

    publish(Pinged(n=1))

    assert ran == []
    delivery = only_delivery("unit.sync.deferred")
    assert (delivery.state, delivery.dispatcher, delivery.attempts) == (
        DeliveryState.PENDING,
        "deferred",
        0,
    )
    assert drain().delivered == 1
    assert ran == [Pinged(n=1)]


@pytest.mark.parametrize("dispatcher", ["carrier_pigeon", "no.such.module.Dispatcher", EXPLODING])
def test_a_dispatcher_that_fails_at_dispatch_time_is_logged_and_deliveries_stay_pending(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture, dispatcher: str
) -> None:
    ran: list[Pinged] = []
    receiver(Pinged, name="unit.sync.undispatched")(ran.append)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": dispatcher}), transaction.atomic():
        event_id = publish(Pinged(n=1))

    assert OutboxEvent.objects.get().id == event_id
    assert ran == []
    delivery = only_delivery("unit.sync.undispatched")
    assert (delivery.state, delivery.dispatcher) == (DeliveryState.PENDING, dispatcher)
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert repr(dispatcher) in record.getMessage()
    assert record.exc_info is not None


def test_a_receiver_can_choose_its_own_dispatcher(receiver_registry: Registry) -> None:
    ran: list[str] = []

    @receiver(Pinged, name="unit.sync.default")
    def default(event: Pinged) -> None:
        ran.append("default")

    @receiver(Pinged, name="unit.sync.later", dispatcher="deferred")
    def later(event: Pinged) -> None:
        ran.append("later")

    publish(Pinged(n=1))

    assert ran == ["default"]
    states = dict(Delivery.objects.values_list("receiver", "state"))
    assert states == {
        "unit.sync.default": DeliveryState.DELIVERED,
        "unit.sync.later": DeliveryState.PENDING,
    }
    assert only_delivery("unit.sync.later").dispatcher == "deferred"


def test_a_custom_dispatcher_gets_the_owed_deliveries_of_one_transaction(
    receiver_registry: Registry,
) -> None:
    ran: list[Pinged] = []
    receiver(Pinged, name="unit.sync.custom_a")(ran.append)
    receiver(Pinged, name="unit.sync.custom_b")(ran.append)

    publish(Pinged(n=0))  # the sync dispatcher, built and cached before the override
    assert ran == [Pinged(n=0), Pinged(n=0)]

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": RECORDING}), transaction.atomic():
        first = publish(Pinged(n=1))
        second = publish(Pinged(n=2))

    assert ran == [Pinged(n=0), Pinged(n=0)]
    [(name, owed)] = RecordingDispatcher.handed
    assert name == RECORDING
    assert {(item.envelope.event_id, item.receiver) for item in owed if item.envelope} == {
        (first, "unit.sync.custom_a"),
        (first, "unit.sync.custom_b"),
        (second, "unit.sync.custom_a"),
        (second, "unit.sync.custom_b"),
    }
    rows = {row.pk: row for row in Delivery.objects.filter(dispatcher=RECORDING)}
    for item in owed:
        assert isinstance(item, OwedDelivery)
        row = rows[item.delivery_id]
        assert row.state == DeliveryState.PENDING
        assert (item.receiver, item.dispatcher, item.using, item.attempts) == (
            row.receiver,
            RECORDING,
            "default",
            0,
        )
        assert item.event == Pinged(n=1 if row.event_id == first else 2)

    # Back to the project's setting without a restart.
    publish(Pinged(n=3))
    assert ran[-2:] == [Pinged(n=3), Pinged(n=3)]
    assert len(RecordingDispatcher.handed) == 1


def test_a_receiver_can_name_a_custom_dispatcher_by_dotted_path(
    receiver_registry: Registry,
) -> None:
    receiver(Pinged, name="unit.sync.by_path", dispatcher=RECORDING)(lambda event: None)
    receiver(Pinged, name="unit.sync.sync_too")(lambda event: None)

    publish(Pinged(n=1))

    [(name, [owed])] = RecordingDispatcher.handed
    assert (name, owed.receiver) == (RECORDING, "unit.sync.by_path")
    assert only_delivery("unit.sync.sync_too").state == DeliveryState.DELIVERED
    assert only_delivery("unit.sync.by_path").state == DeliveryState.PENDING


@pytest.mark.django_db
def test_a_stored_event_that_cannot_be_decoded_goes_dead_with_the_decode_error() -> None:
    from django.utils import timezone

    from django_domain_events import EventDecodeError
    from django_domain_events.signals import delivery_dead
    from django_domain_events.testing import drain

    now = timezone.now()
    event = OutboxEvent.objects.create(
        event_type="testapp.OrderPlaced",
        payload={"order_id": "not a number"},
        occurred_at=now,
        correlation_id="c",
    )
    delivery = Delivery.objects.create(
        event=event,
        receiver="tests.testapp.handlers.record_order_placed",
        dispatcher="sync",
        created_at=now,
        next_attempt_at=now,
    )
    heard: list[dict[str, Any]] = []

    def listener(**kwargs: Any) -> None:
        heard.append(kwargs)

    delivery_dead.connect(listener)
    try:
        result = drain()
    finally:
        delivery_dead.disconnect(listener)

    delivery.refresh_from_db()
    assert result.dead == 1
    assert delivery.state == DeliveryState.DEAD
    assert "does not fit OrderPlaced" in delivery.last_error
    [kwargs] = heard
    assert isinstance(kwargs["exception"], EventDecodeError)
    assert kwargs["event"] is None
