"""LISTEN/NOTIFY on PostgreSQL: a transaction that leaves deliveries to the relay notifies once,
on commit only; a listening relay wakes on it, falls back to polling when its listening
connection is terminated, and stops at once when asked, however long its interval."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test import override_settings

from django_domain_events import NamedEvent, publish, publish_many, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery import wakeups
from django_domain_events.delivery.relay import Relay
from django_domain_events.delivery.wakeups import RelayWakeups, Wake
from django_domain_events.models import Delivery, DeliveryState
from tests.processes import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TICKED = "wakeups_tests.ticked"
MARKER = "marker"
"""The payload of the notification each test sends last: everything before it has arrived."""


@pytest.fixture
def channel() -> Iterator[str]:
    """A channel of the test's own, set as RELAY_CHANNEL."""
    name = f"dde_test_{uuid.uuid4().hex[:12]}"
    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred", "RELAY_CHANNEL": name}):
        yield name


@pytest.fixture
def ticked(receiver_registry: Registry) -> Registry:
    @receiver(TICKED, name="wakeups_tests.tick")
    def tick(event: NamedEvent) -> None:
        pass

    return receiver_registry


@pytest.fixture
def listener(channel: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection of its own, listening on ``channel``."""
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as listening:
        listening.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        yield listening


def received(listening: psycopg.Connection[tuple[object, ...]], channel: str) -> list[str]:
    """Send the marker in a transaction of its own, then return the payloads of every
    notification that arrived before it (notifications arrive in commit order)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [channel, MARKER])
    payloads = []
    for notify in listening.notifies(timeout=60):
        if notify.payload == MARKER:
            return payloads
        payloads.append(notify.payload)
    pytest.fail("The marker notification did not arrive within 60 s.")


def test_a_committed_publish_notifies_once_per_transaction(
    ticked: Registry, listener: psycopg.Connection[tuple[object, ...]], channel: str
) -> None:
    with transaction.atomic():
        publish(TICKED, {"n": 1})
        publish(TICKED, {"n": 2})
        publish_many([NamedEvent(TICKED, {"n": n}) for n in range(3, 40)])
        with transaction.atomic():
            publish(TICKED, {"n": 40})

    assert received(listener, channel) == [""]
    # Each autocommitted publish is a transaction of its own.
    publish(TICKED, {"n": 41})
    publish(TICKED, {"n": 42})
    assert received(listener, channel) == ["", ""]


def test_a_rolled_back_publish_does_not_notify(
    ticked: Registry, listener: psycopg.Connection[tuple[object, ...]], channel: str
) -> None:
    with transaction.atomic():
        publish(TICKED, {"n": 1})
        transaction.set_rollback(True)
    with transaction.atomic():
        with transaction.atomic():
            publish(TICKED, {"n": 2})
            transaction.set_rollback(True)
        with use_dispatcher("sync"):
            publish(TICKED, {"n": 3})

    assert received(listener, channel) == []
    with transaction.atomic():
        with transaction.atomic():
            publish(TICKED, {"n": 4})
            transaction.set_rollback(True)
        # The savepoint's NOTIFY went with it: the outer level sends its own.
        publish(TICKED, {"n": 5})

    assert received(listener, channel) == [""]


def test_only_deliveries_left_to_the_relay_notify(
    ticked: Registry, listener: psycopg.Connection[tuple[object, ...]], channel: str
) -> None:
    with use_dispatcher("sync"):
        publish(TICKED, {"n": 1})
    publish("wakeups_tests.without_receivers", {})
    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred", "RELAY_LISTEN": False}):
        publish(TICKED, {"n": 2})

    assert received(listener, channel) == []


def test_relay_wakeups_wait_for_a_notification(ticked: Registry, channel: str) -> None:
    listening = RelayWakeups("default", channel)
    try:
        assert listening.connect()
        publish(TICKED, {"n": 1})
        publish(TICKED, {"n": 2})

        # One wait, however many notifications arrived before it.
        assert listening.wait(60) is Wake.NOTIFIED
        publish(TICKED, {"n": 3})
        assert listening.wait(60) is Wake.NOTIFIED
    finally:
        listening.close()


def listening_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate(pids: list[int]) -> None:
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


class RelayThread:
    """``Relay.run_forever()`` in a thread, recording what ended each wait."""

    def __init__(self, interval: float) -> None:
        self.relay = Relay(grace=3600)
        self.wakes: list[Wake] = []
        self.thread = threading.Thread(target=self._run, kwargs={"interval": interval})
        self.thread.start()

    def _run(self, interval: float) -> None:
        try:
            self.relay.run_forever(interval=interval, listen=True, on_wake=self.wakes.append)
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.relay.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the relay did not stop within 60 s"


def test_a_relay_stops_at_once_however_long_its_interval(ticked: Registry, channel: str) -> None:
    running = RelayThread(interval=3600)
    wait_until(lambda: running.relay.listening, "the relay to listen")

    running.stop()

    assert running.wakes == [Wake.STOPPED]


def test_a_relay_whose_listening_connection_is_terminated_keeps_polling(
    ticked: Registry, channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It would reconnect after an hour: until then, only polling can deliver.
    monkeypatch.setattr(wakeups, "RECONNECT_FIRST", 3600.0)
    running = RelayThread(interval=0.05)
    try:
        wait_until(lambda: running.relay.listening and listening_backends(), "the relay to listen")
        terminate(listening_backends())
        wait_until(lambda: not running.relay.listening, "the relay to see its connection end")
        since = len(running.wakes)

        publish(TICKED, {"n": 1})

        delivered = Delivery.objects.filter(state=DeliveryState.DELIVERED)
        wait_until(delivered.exists, "the relay to deliver by polling")
        # Not listening since, and never woken by a notification: the poll delivered it (the
        # pass may have been under way when the publish committed, so no new wake need show).
        assert not running.relay.listening
        assert Wake.NOTIFIED not in running.wakes[since:]
    finally:
        running.stop()
    assert Wake.RECONNECTED not in running.wakes
