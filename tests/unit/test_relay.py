"""The relay: which deliveries it claims (by the database clock), how it dispatches them, and
what it refuses to do with rows it cannot trust."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db.models.functions import Now
from django.test import override_settings
from django.utils import timezone

from django_domain_events import (
    Envelope,
    NamedEvent,
    publish,
    receiver,
    use_dispatcher,
)
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay, declared_dispatchers
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.testapp.events import OrderPlaced
from tests.testapp.models import Effect
from tests.unit.recording import RECORDING, RecordingDispatcher

pytestmark = pytest.mark.django_db(transaction=True)

TICKED = "relay_unit.ticked"
TRAP_MODULE = "tests.unit.relay_trap"


@pytest.fixture
def recorded(receiver_registry: Registry) -> Registry:
    """A registry with one sync receiver of ``TICKED`` that records an Effect per run."""

    @receiver(TICKED, name="relay_unit.record")
    def record(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(
            receiver="relay_unit.record", event_id=envelope.event_id, attempt=envelope.attempt
        )

    return receiver_registry


def publish_deferred(count: int = 1, event_type: str = TICKED) -> list[uuid.UUID]:
    """Publish ``count`` events whose deliveries stay pending, as if the process had died."""
    with use_dispatcher("deferred"):
        return [publish(event_type, {"n": n}) for n in range(count)]


def age(**changes: Any) -> None:
    """Move every delivery's times an hour into the past, then apply ``changes``."""
    hour_ago = timezone.now() - dt.timedelta(hours=1)
    Delivery.objects.update(created_at=hour_ago, next_attempt_at=hour_ago, **changes)


def effects() -> list[tuple[str, uuid.UUID]]:
    return sorted(Effect.objects.values_list("receiver", "event_id"))


def test_a_pending_delivery_past_the_grace_period_is_delivered(recorded: Registry) -> None:
    [event_id] = publish_deferred()
    age()

    totals = Relay().run_pass()

    assert (totals.claimed, totals.delivered) == (1, 1)
    assert effects() == [("relay_unit.record", event_id)]
    row = Delivery.objects.get()
    assert (row.state, row.attempts, row.claimed_by, row.claimed_until) == (
        DeliveryState.DELIVERED,
        1,
        "",
        None,
    )


def test_a_fresh_pending_delivery_is_left_to_the_dispatch_at_commit(recorded: Registry) -> None:
    publish_deferred()
    # A "sync" delivery whose dispatch at commit has not happened yet.
    Delivery.objects.update(dispatcher="sync")

    totals = Relay(grace=3600).run_pass()

    assert totals.claimed == 0
    assert Delivery.objects.get().state == DeliveryState.PENDING
    assert effects() == []


def test_a_fresh_deferred_delivery_is_taken_at_once(recorded: Registry) -> None:
    # No dispatch at commit is there to race: the grace does not apply.
    [event_id] = publish_deferred()

    totals = Relay(grace=3600).run_pass()

    assert (totals.claimed, totals.delivered) == (1, 1)
    assert effects() == [("relay_unit.record", event_id)]


def test_grace_is_measured_by_the_database_clock(recorded: Registry) -> None:
    publish_deferred()
    Delivery.objects.update(dispatcher="sync")
    # Written "in the future" by a host whose clock runs ahead: not owed yet by the database's
    # clock, whatever this host's says.
    Delivery.objects.update(created_at=Now() + dt.timedelta(minutes=10))

    assert Relay(grace=0).run_pass().claimed == 0


def test_a_failed_delivery_runs_once_its_retry_is_due(recorded: Registry) -> None:
    publish_deferred(2)
    age(state=DeliveryState.FAILED, attempts=1)
    not_due = Delivery.objects.order_by("id").first()
    assert not_due is not None
    Delivery.objects.filter(pk=not_due.pk).update(next_attempt_at=Now() + dt.timedelta(minutes=5))

    totals = Relay().run_pass()

    assert (totals.claimed, totals.delivered) == (1, 1)
    states = dict(Delivery.objects.values_list("pk", "state"))
    assert states.pop(not_due.pk) == DeliveryState.FAILED
    assert list(states.values()) == [DeliveryState.DELIVERED]
    assert Delivery.objects.get(state=DeliveryState.DELIVERED).attempts == 2


def test_a_dispatched_delivery_is_redispatched_only_after_the_dispatch_timeout(
    recorded: Registry,
) -> None:
    publish_deferred(3)
    age(state=DeliveryState.DISPATCHED)
    old, recent, leased = Delivery.objects.order_by("id")
    Delivery.objects.filter(pk=old.pk).update(dispatched_at=Now() - dt.timedelta(seconds=400))
    Delivery.objects.filter(pk=recent.pk).update(dispatched_at=Now() - dt.timedelta(seconds=10))
    # Dispatched long ago, but another relay's lease on it still runs.
    Delivery.objects.filter(pk=leased.pk).update(
        dispatched_at=Now() - dt.timedelta(seconds=400),
        claimed_by="another-relay",
        claimed_until=Now() + dt.timedelta(seconds=60),
    )

    totals = Relay(dispatch_timeout=300).run_pass()

    assert totals.claimed == 1
    assert dict(Delivery.objects.values_list("pk", "state")) == {
        old.pk: DeliveryState.DELIVERED,
        recent.pk: DeliveryState.DISPATCHED,
        leased.pk: DeliveryState.DISPATCHED,
    }


def test_a_claim_marks_the_batch_dispatched_with_a_lease(recorded: Registry) -> None:
    publish_deferred(3)
    age()
    relay = Relay(batch_size=2, lease=120)

    claimed = relay.claim_batch()

    assert len(claimed) == 2
    rows = Delivery.objects.filter(pk__in=[owed.delivery_id for owed in claimed])
    for row in rows:
        assert row.state == DeliveryState.DISPATCHED
        assert row.claimed_by == relay.relay_id
        assert row.claimed_until is not None
        assert row.dispatched_at is not None
        lease = (row.claimed_until - row.dispatched_at).total_seconds()
        assert lease == pytest.approx(120, abs=1)
    # Claimed and leased: neither this relay nor another takes them again.
    assert len(Relay().claim_batch()) == 1
    assert Relay().claim_batch() == []


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_a_relay_claims_on_its_own_database(recorded: Registry) -> None:
    with use_dispatcher("deferred"):
        publish(TICKED, {"n": 1}, using="other")
        publish(TICKED, {"n": 2})
    hour_ago = timezone.now() - dt.timedelta(hours=1)
    Delivery.objects.using("other").update(created_at=hour_ago)
    Delivery.objects.update(created_at=hour_ago)

    claimed = Relay(using="other").claim_batch()

    [row] = Delivery.objects.using("other").all()
    assert [(owed.delivery_id, owed.using) for owed in claimed] == [(row.pk, "other")]
    assert row.state == DeliveryState.DISPATCHED
    assert Delivery.objects.get().state == DeliveryState.PENDING


def test_a_pass_runs_batches_until_nothing_is_owed(recorded: Registry) -> None:
    publish_deferred(7)
    age()
    seen: list[int] = []

    totals = Relay(batch_size=3).run_pass(on_batch=lambda batch: seen.append(batch.claimed))

    assert seen == [3, 3, 1]
    assert (totals.batches, totals.claimed, totals.delivered) == (3, 7, 7)
    assert len(effects()) == 7


def test_deferred_deliveries_run_in_the_relay(recorded: Registry) -> None:
    publish_deferred()
    age()

    Relay().run_pass()

    assert Delivery.objects.get().dispatcher == "deferred"
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


def test_a_queue_dispatcher_gets_its_deliveries_in_one_call(receiver_registry: Registry) -> None:
    receiver(TICKED, name="relay_unit.queued", dispatcher=RECORDING)(lambda event: None)
    publish_deferred(3)
    age(dispatcher=RECORDING)
    relay = Relay()

    totals = relay.run_pass()

    assert (totals.claimed, totals.sent) == (3, 3)
    [call] = RecordingDispatcher.calls
    assert sorted(owed.delivery_id for owed in call) == sorted(
        Delivery.objects.values_list("pk", flat=True)
    )
    # Handed over, not run: they stay dispatched until the queue's worker settles them.
    assert set(Delivery.objects.values_list("state", "claimed_by")) == {
        (DeliveryState.DISPATCHED, relay.relay_id)
    }


def test_a_dispatcher_named_only_by_a_row_is_never_imported(recorded: Registry) -> None:
    publish_deferred()
    age(dispatcher=f"{TRAP_MODULE}.TrapDispatcher")
    assert TRAP_MODULE not in sys.modules

    totals = Relay().run_pass()

    assert TRAP_MODULE not in sys.modules
    assert totals.buried == 1
    row = Delivery.objects.get()
    assert row.state == DeliveryState.DEAD
    assert f"'{TRAP_MODULE}.TrapDispatcher' is neither a built-in dispatcher" in row.last_error
    assert (row.claimed_by, row.next_attempt_at) == ("", None)
    assert effects() == []


def test_declared_dispatchers_are_the_builtins_the_default_and_the_receivers(
    receiver_registry: Registry,
) -> None:
    receiver(TICKED, name="relay_unit.queued", dispatcher=RECORDING)(lambda event: None)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "tests.unit.custom.Dispatcher"}):
        names = declared_dispatchers()

    assert names == {
        "sync",
        "deferred",
        "celery",
        "tasks",
        RECORDING,
        "tests.unit.custom.Dispatcher",
    }


def test_a_delivery_to_a_receiver_that_no_longer_exists_goes_dead(recorded: Registry) -> None:
    publish_deferred()
    age(receiver="relay_unit.renamed_away")

    totals = Relay().run_pass()

    assert totals.dead == 1
    row = Delivery.objects.get()
    assert row.state == DeliveryState.DEAD
    assert "No receiver named 'relay_unit.renamed_away' is registered" in row.last_error


def test_a_delivery_whose_payload_cannot_be_decoded_goes_dead(receiver_registry: Registry) -> None:
    receiver(OrderPlaced, name="relay_unit.order_placed")(lambda event: None)
    with use_dispatcher("deferred"):
        publish(OrderPlaced(order_id=1, total=Decimal("9.50")))
    age()
    # Written by code that is gone: the current class cannot be built from it.
    OutboxEvent.objects.update(payload={"order_id": "one"})

    totals = Relay().run_pass()

    assert totals.dead == 1
    row = Delivery.objects.get()
    assert (row.state, row.attempts) == (DeliveryState.DEAD, 1)
    assert "OrderPlaced" in row.last_error


def test_a_relay_whose_claim_was_taken_over_runs_nothing_of_it(recorded: Registry) -> None:
    publish_deferred(2)
    age()
    slow = Relay(lease=0.003)
    claimed = slow.claim_batch()
    # The lease lapsed and another relay claimed the batch since.
    Delivery.objects.update(claimed_by="another-relay", claimed_until=Now() + dt.timedelta(60))

    totals = slow.hand_over(claimed)

    assert (totals.lost, totals.delivered) == (2, 0)
    assert effects() == []
    assert set(Delivery.objects.values_list("state", "claimed_by")) == {
        (DeliveryState.DISPATCHED, "another-relay")
    }


def test_still_claimed_keeps_only_this_relays_claims(recorded: Registry) -> None:
    publish_deferred(3)
    age()
    relay = Relay()
    claimed = relay.claim_batch()
    taken = claimed[0].delivery_id
    Delivery.objects.filter(pk=taken).update(claimed_by="another-relay")

    kept = relay.still_claimed(claimed)

    assert [owed.delivery_id for owed in kept] == [owed.delivery_id for owed in claimed[1:]]
    assert Delivery.objects.get(pk=taken).claimed_by == "another-relay"


def test_a_stopped_relay_finishes_its_batch_and_returns(recorded: Registry) -> None:
    publish_deferred(4)
    age()
    relay = Relay(batch_size=2)

    def stop_after_first(batch: Any) -> None:
        relay.stop()

    totals = relay.run_forever(interval=0, on_batch=stop_after_first)

    assert (totals.batches, totals.delivered) == (1, 2)
    assert Delivery.objects.filter(state=DeliveryState.PENDING).count() == 2


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size is 0; it must be at least 1"):
        Relay(batch_size=0)


def test_the_celery_beat_task_runs_one_pass(recorded: Registry) -> None:
    from django_domain_events.dispatchers.celery.tasks import RELAY_TASK_NAME, relay

    publish_deferred(3)
    age()

    assert relay.name == RELAY_TASK_NAME
    totals = relay.apply(kwargs={"max_seconds": 0}).get()

    assert (totals["claimed"], totals["delivered"]) == (3, 3)
    assert len(effects()) == 3


def test_a_pass_stops_at_its_deadline(recorded: Registry) -> None:
    publish_deferred(4)
    age()

    totals = Relay(batch_size=2).run_pass(deadline=0)

    assert (totals.batches, totals.delivered) == (1, 2)
