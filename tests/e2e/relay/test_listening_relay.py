"""``relay_events`` listening on PostgreSQL, as real processes: with a poll interval of an hour
it still delivers as soon as a publish commits (only the notification can have woken it), two
listening relays run every delivery exactly once, and a relay whose listening connection is
terminated reconnects and is woken again."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from django_domain_events import NamedEvent, publish_many, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from tests.processes import wait_until
from tests.testapp.models import Effect

from .conftest import Process
from .receivers import RECORD, RECORDED

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOUR = "3600"
"""The relays' poll interval: far beyond any wait of these tests, so what they deliver was
woken by a notification."""
WAITING = f"Waiting up to {HOUR} s or a notification."
"""What ``relay_events -v 2`` prints each time it starts waiting, listening."""
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}


def start_listening_relay(start: Callable[..., Process], *args: str) -> Process:
    """Start ``relay_events`` listening with an interval of an hour, and wait until it has
    made its first pass and waits."""
    relay = start("relay_events", "-v", "2", "--interval", HOUR, *args, env=UNBUFFERED)
    wait_until(lambda: WAITING in relay.output(), "the relay to wait", report=relay.output)
    return relay


def publish_deferred(count: int) -> list[uuid.UUID]:
    """Publish ``count`` events of ``RECORDED`` on the deferred dispatcher, one transaction."""
    with use_dispatcher("deferred"):
        return publish_many([NamedEvent(RECORDED, {"n": n}) for n in range(count)])


def recorded_per_event() -> Counter[uuid.UUID]:
    return Counter(
        Effect.objects.filter(receiver__startswith=f"{RECORD}@").values_list("event_id", flat=True)
    )


def all_delivered() -> bool:
    return not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists()


def stop(relay: Process) -> dict[str, int]:
    relay.signal(signal.SIGTERM)
    assert relay.wait() == 0, relay.output()
    return relay.totals()


def test_a_listening_relay_delivers_at_once_though_it_polls_hourly(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    relay = start_listening_relay(start)
    assert "Listening on channel 'domain_events'" in relay.output()

    event_ids = publish_deferred(5)

    wait_until(all_delivered, "the relay to deliver", timeout=60, report=relay.output)
    assert "Woken: notified." in relay.output()
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)
    assert stop(relay)["claimed"] == 10


def test_two_listening_relays_run_every_delivery_once(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    relays = [start_listening_relay(start, "--batch-size", "20") for _ in range(2)]

    event_ids = []
    for _ in range(100):
        with transaction.atomic():
            event_ids += publish_deferred(5)

    wait_until(all_delivered, "the relays to deliver", timeout=120, report=relays[0].output)
    claimed = [stop(relay)["claimed"] for relay in relays]
    # Each event has two deliveries (record and poison); none was claimed twice.
    assert sum(claimed) == 2 * len(event_ids), claimed
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)
    assert all("Woken: notified." in relay.output() for relay in relays)


def listening_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def test_a_relay_whose_listening_backend_is_terminated_reconnects(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    relay = start_listening_relay(start)
    [backend] = wait_until(listening_backends, "the relay's listening backend")
    waits = relay.output().count(WAITING)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])

    # It reconnects, runs a pass for what it may have missed, and waits again, listening.
    wait_until(
        lambda: "Woken: reconnected." in relay.output() and relay.output().count(WAITING) > waits,
        "the relay to reconnect",
        timeout=60,
        report=relay.output,
    )
    assert listening_backends() not in ([], [backend])
    event_ids = publish_deferred(3)
    wait_until(all_delivered, "the relay to deliver", timeout=60, report=relay.output)
    after = relay.output().split("Woken: reconnected.", 1)[1]
    assert "Woken: notified." in after
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)
    stop(relay)


def test_a_relay_told_not_to_listen_only_polls(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    relay = start("relay_events", "-v", "2", "--interval", "0.05", "--no-listen", env=UNBUFFERED)
    wait_until(lambda: "Woken: poll." in relay.output(), "the relay to poll", report=relay.output)

    event_ids = publish_deferred(3)

    wait_until(all_delivered, "the relay to deliver", timeout=60, report=relay.output)
    output = relay.output()
    assert "Polling every 0.05 s, not listening: --no-listen or RELAY_LISTEN off." in output
    assert "Waiting up to 0.05 s without listening." in output
    assert "Woken: notified." not in output
    assert listening_backends() == []
    assert recorded_per_event() == dict.fromkeys(event_ids, 1)
    stop(relay)
