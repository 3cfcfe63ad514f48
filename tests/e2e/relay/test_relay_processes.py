"""The relay on real processes and PostgreSQL: a publisher killed between commit and dispatch,
relays racing each other, a relay paused past its lease, a poison receiver, and pruning while
deliveries run. Effects are counted in the database: each must happen exactly once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from django_domain_events import publish, publish_many, use_dispatcher
from django_domain_events.declaration.events import NamedEvent
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.processes import wait_until
from tests.tcp_proxy import TCPProxy
from tests.testapp.models import Effect

from .conftest import Process
from .receivers import (
    HANG,
    HANG_ATTEMPTS,
    HANG_TIMEOUT,
    HELD,
    HUNG,
    POISON,
    POISON_ATTEMPTS,
    RECORD,
    RECORDED,
)

pytestmark = [pytest.mark.server_db, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RACE_EVENTS = int(os.environ.get("DOMAIN_EVENTS_RELAY_RACE_EVENTS", "1000"))
"""Events in the race between relays: 1,000 (2,000 deliveries) keeps CI quick; set 5000 for
the 10,000 deliveries of the full proof."""

FAILED_BATCH = "A batch failed on a database error"
"""What ``relay_events`` prints each time a pass fails on a database error."""

FAST = {"RELAY_GRACE": 0, "RELAY_INTERVAL": 0.05, "RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0}


def publish_owed(count: int, **payload: object) -> list[uuid.UUID]:
    """Publish ``count`` events of ``RECORDED`` whose deliveries nobody dispatched."""
    with use_dispatcher("deferred"):
        return publish_many([NamedEvent(RECORDED, {"n": n, **payload}) for n in range(count)])


def recorded_per_event() -> Counter[uuid.UUID]:
    return Counter(
        Effect.objects.filter(receiver__startswith=f"{RECORD}@").values_list("event_id", flat=True)
    )


def test_a_publisher_killed_after_commit_is_delivered_by_the_relay_once(
    start: Callable[..., Process], relay_receivers: Registry, tmp_path: Path
) -> None:
    committed = tmp_path / "committed"
    publisher = start("-m", "tests.e2e.relay.publisher", "50", str(committed))
    wait_until(committed.exists, "the publisher's commit", report=publisher.output)
    publisher.kill()
    # Committed, never dispatched: 50 events, a delivery per receiver each, all pending.
    assert OutboxEvent.objects.count() == 50
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}
    assert not Effect.objects.exists()

    relay = start("relay_events", "--once", settings={"RELAY_GRACE": 0})

    assert relay.wait() == 0, relay.output()
    assert relay.totals()["claimed"] == 100
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    event_ids = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)


@pytest.mark.parametrize("relays", [2, 4])
def test_concurrent_relays_deliver_each_delivery_once(
    start: Callable[..., Process], relay_receivers: Registry, relays: int
) -> None:
    # Each event has two deliveries: one to record, one to poison (a no-op for these).
    event_ids = publish_owed(RACE_EVENTS)

    processes = [
        start("relay_events", "--once", "--batch-size", "50", settings={"RELAY_GRACE": 0})
        for _ in range(relays)
    ]

    for process in processes:
        assert process.wait() == 0, process.output()
    claimed = [process.totals()["claimed"] for process in processes]
    # No delivery was claimed by two relays: the claims add up to the deliveries exactly.
    assert sum(claimed) == 2 * RACE_EVENTS, claimed
    assert Delivery.objects.exclude(state=DeliveryState.DELIVERED).count() == 0
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)


def test_a_relay_paused_past_its_lease_cannot_touch_what_another_relay_claimed(
    start: Callable[..., Process], relay_receivers: Registry, tmp_path: Path
) -> None:
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.touch()
    with use_dispatcher("deferred"):
        held_event = publish(HELD, {"started": str(started), "hold": str(hold)})
    later = publish_owed(10)
    # The held delivery is the oldest, so it is the first the paused relay runs.
    Delivery.objects.filter(event_id=held_event).update(created_at=Now() - dt.timedelta(minutes=1))
    paused = start("relay_events", "--once", settings={"RELAY_GRACE": 0, "RELAY_LEASE": 1})
    wait_until(started.exists, "the paused relay to start the held delivery", report=paused.output)
    paused.signal(signal.SIGSTOP)
    hold.unlink()
    # Its lease ends (by the database clock) while it is stopped.
    wait_until(
        lambda: not Delivery.objects.filter(claimed_until__gt=Now()).exists(),
        "the paused relay's lease to end",
    )

    other = Relay(lease=60, dispatch_timeout=0)
    taken = other.claim_batch()
    paused.signal(signal.SIGCONT)
    assert paused.wait() == 0, paused.output()

    # The held delivery was locked by the paused relay's transaction, so it was skipped; the
    # 20 others were taken, and the paused relay, back, neither ran nor marked them.
    assert len(taken) == 20
    totals = paused.totals()
    assert (totals["delivered"], totals["lost"]) == (1, 20)
    assert set(
        Delivery.objects.exclude(event_id=held_event).values_list("state", "claimed_by")
    ) == {(DeliveryState.DISPATCHED, other.relay_id)}
    assert sum(recorded_per_event().values()) == 1

    other.hand_over(taken)

    assert recorded_per_event() == dict.fromkeys([held_event, *later], 1)


def test_a_poison_receiver_goes_dead_while_the_others_flow(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    event_ids = publish_owed(20, poison=True)
    relay = start("relay_events", settings=FAST)

    wait_until(
        lambda: Delivery.objects.filter(receiver=POISON, state=DeliveryState.DEAD).count() == 20,
        "the poison receiver's deliveries to go dead",
        report=relay.output,
    )
    relay.signal(signal.SIGTERM)

    assert relay.wait() == 0, relay.output()
    assert "done. Totals:" in relay.output()
    poisoned = Delivery.objects.filter(receiver=POISON)
    assert {(row.attempts, row.last_error) for row in poisoned} == {
        (POISON_ATTEMPTS, "RuntimeError: poisoned payload")
    }
    assert all("RuntimeError" in row.traceback for row in poisoned)
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)


def test_pruning_while_the_relay_delivers_loses_nothing_unsettled(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    settled = publish_owed(300)
    Delivery.objects.update(
        state=DeliveryState.DELIVERED, delivered_at=Now(), last_attempt_at=Now()
    )
    owed = publish_owed(300)
    month_ago = timezone.now() - dt.timedelta(days=30)
    OutboxEvent.objects.update(occurred_at=month_ago)
    Delivery.objects.update(created_at=month_ago)
    Delivery.objects.filter(state=DeliveryState.DELIVERED).update(
        delivered_at=month_ago, last_attempt_at=month_ago
    )

    relay = start("relay_events", "--batch-size", "20", settings=FAST)
    pruner = start("prune_events", "--older-than", "7d", "--batch-size", "25")
    assert pruner.wait() == 0, pruner.output()
    wait_until(
        lambda: not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists(),
        "the relay to deliver everything owed",
        report=relay.output,
    )
    relay.signal(signal.SIGTERM)
    assert relay.wait() == 0, relay.output()

    assert not OutboxEvent.objects.filter(pk__in=settled).exists()
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == set(owed)
    assert Delivery.objects.filter(event_id__in=owed).count() == 600
    assert recorded_per_event() == dict.fromkeys(owed, 1)


def test_a_relay_recovers_from_the_database_going_away_without_a_restart(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    event_ids = publish_owed(150)
    proxy = TCPProxy("127.0.0.1", int(connection.settings_dict["PORT"]))
    # Claims and dispatches lost with the connection are owed again after a second.
    settings = {**FAST, "RELAY_LEASE": 1, "DISPATCH_TIMEOUT": 1}
    try:
        relay = start(
            "relay_events",
            "--batch-size",
            "10",
            settings=settings,
            env={"DOMAIN_EVENTS_TEST_DB_PORT": str(proxy.port)},
        )
        wait_until(
            lambda: Effect.objects.count() >= 40, "the relay to get going", report=relay.output
        )
        proxy.cut()
        wait_until(
            lambda: FAILED_BATCH in relay.output(),
            "the relay to notice the outage",
            report=relay.output,
        )
        during_outage = Effect.objects.count()
        failed_passes = relay.output().count(FAILED_BATCH)
        # The relay goes on trying: once another pass has failed, it has had its chance to
        # deliver during the outage, and must not have.
        wait_until(
            lambda: relay.output().count(FAILED_BATCH) > failed_passes,
            "the relay to fail another pass during the outage",
            report=relay.output,
        )
        assert Effect.objects.count() == during_outage
        proxy.restore()
        wait_until(
            lambda: not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists(),
            "the relay to deliver everything after the outage",
            report=relay.output,
        )
        relay.signal(signal.SIGTERM)
        assert relay.wait() == 0, relay.output()
    finally:
        proxy.close()

    assert relay.totals()["errors"] >= 1
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)


def test_a_hung_receiver_times_out_and_the_relay_delivers_the_others(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    with use_dispatcher("deferred"):
        events = publish_many([NamedEvent(HUNG, {"n": n}) for n in range(3)])
    hung = Delivery.objects.filter(receiver=HANG)

    def settled() -> bool:
        rows = Delivery.objects.filter(event_id__in=events)
        return not rows.exclude(state__in=(DeliveryState.DELIVERED, DeliveryState.DEAD)).exists()

    relay = start("relay_events", settings=FAST)
    wait_until(settled, "the relay to settle every delivery", timeout=120, report=relay.output)
    relay.signal(signal.SIGTERM)
    assert relay.wait() == 0, relay.output()

    others = Delivery.objects.filter(event_id__in=events).exclude(receiver=HANG)
    assert set(others.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    assert [(row.state, row.attempts) for row in hung] == [(DeliveryState.DEAD, HANG_ATTEMPTS)] * 3
    for row in hung:
        assert row.last_error.startswith(
            f"ReceiverTimedOut: Receiver {HANG} timed out after {HANG_TIMEOUT} s"
        )
    # Only the deliveries that returned left an effect: the hung ones' were rolled back.
    assert recorded_per_event() == dict.fromkeys(events, 1)


def idle_in_transaction_backends() -> list[int]:
    """Other backends of the test database that sit in an open transaction, waiting."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
        )
        return [pid for (pid,) in cursor.fetchall()]


@pytest.mark.postgres  # pg_terminate_backend()
def test_a_lost_database_connection_spends_no_attempt(
    start: Callable[..., Process], relay_receivers: Registry, tmp_path: Path
) -> None:
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.touch()
    with use_dispatcher("deferred"):
        event_id = publish(HELD, {"started": str(started), "hold": str(hold)})
    relay = start("relay_events", settings=FAST)
    wait_until(started.exists, "the receiver to start", report=relay.output)
    # The relay's connection, in the receiver's transaction while the receiver waits.
    [backend] = wait_until(idle_in_transaction_backends, "the receiver's transaction")

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    hold.unlink()  # the receiver goes on, and its next query finds the connection gone

    delivered = Delivery.objects.filter(event_id=event_id, state=DeliveryState.DELIVERED)
    wait_until(delivered.exists, "the relay to deliver it again", report=relay.output)
    relay.signal(signal.SIGTERM)
    assert relay.wait() == 0, relay.output()

    # The run the lost connection ended was not counted: the one that delivered is attempt 1.
    assert delivered.get().attempts == 1
    assert list(Effect.objects.filter(event_id=event_id).values_list("attempt", flat=True)) == [1]
    assert (relay.totals()["failed"], relay.totals()["delivered"]) == (1, 1)
