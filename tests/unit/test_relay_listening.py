"""The listening relay's settings and its behaviour where there is nothing to listen to (SQLite):
it polls, says why, and stops at once; deliveries left to the relay are owed at once. The
listening itself is PostgreSQL's: tests/integration/test_postgres_relay_wakeups.py."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from django.test import override_settings

from django_domain_events import Dispatcher, NamedEvent, OwedDelivery, publish, receiver
from django_domain_events.checks.configuration import check_settings
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.delivery.wakeups import Wake, cannot_listen
from django_domain_events.models import Delivery, DeliveryState

pytestmark = pytest.mark.django_db(transaction=True)

LEFT_TO_RELAY = "tests.unit.test_relay_listening.LeftToRelay"


class LeftToRelay(Dispatcher):
    """A dispatcher of a project's own that, like "deferred", leaves everything to the relay."""

    left_to_relay = True

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        return None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RELAY_LISTEN", "yes"),
        ("RELAY_CHANNEL", ""),
        ("RELAY_CHANNEL", 7),
        ("RELAY_CHANNEL", "c" * 64),
    ],
)
def test_bad_listening_settings_are_check_errors(key: str, value: Any) -> None:
    with override_settings(DOMAIN_EVENTS={key: value}):
        [error] = check_settings()

    assert error.id == "django_domain_events.E002"
    assert f"DOMAIN_EVENTS[{key!r}] is {value!r}" in error.msg


def test_good_listening_settings_pass_the_checks() -> None:
    with override_settings(DOMAIN_EVENTS={"RELAY_LISTEN": False, "RELAY_CHANNEL": "c" * 63}):
        assert check_settings() == []


def test_a_relay_on_sqlite_does_not_listen_and_says_why(vendor: str) -> None:
    if vendor != "sqlite":
        pytest.skip("PostgreSQL listens: tests/integration/test_postgres_relay_wakeups.py")
    reason = cannot_listen("default")

    assert reason == "the database 'default' is sqlite, and only PostgreSQL has LISTEN/NOTIFY"
    assert Relay().start_listening() is None


# The relay's thread claims on a connection of its own; Django never closes an in-memory SQLite
# database (closing would drop it), so that connection is freed with the thread, which Python
# 3.13 reports as an unclosed database. The test collects it, so the report lands here, where
# it is expected, and not in whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_polling_relay_stops_at_once_however_long_its_interval() -> None:
    relay = Relay()
    woken: list[Wake] = []
    waiting = threading.Event()

    thread = threading.Thread(
        target=relay.run_forever,
        kwargs={
            "interval": 3600,
            "listen": True,
            "on_wait": lambda seconds, listening: waiting.set(),
            "on_wake": woken.append,
        },
    )
    thread.start()
    assert waiting.wait(60), "the relay never waited"

    relay.stop()
    thread.join(timeout=60)

    assert not thread.is_alive()
    assert woken == [Wake.STOPPED]
    del thread
    gc.collect()


def test_deliveries_of_a_dispatcher_left_to_the_relay_are_owed_at_once(
    receiver_registry: Registry,
) -> None:
    @receiver("listening_unit.ticked", name="listening_unit.tick", dispatcher=LEFT_TO_RELAY)
    def tick(event: NamedEvent) -> None:
        pass

    @receiver("listening_unit.ticked", name="listening_unit.later", dispatcher="sync")
    def later(event: NamedEvent) -> None:
        pass

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        publish("listening_unit.ticked", {})
    # The sync delivery ran at commit; put it back as if its dispatch had not happened yet.
    Delivery.objects.filter(receiver="listening_unit.later").update(state=DeliveryState.PENDING)

    totals = Relay(grace=3600).run_pass()

    assert totals.delivered == 1
    assert dict(Delivery.objects.values_list("receiver", "state")) == {
        "listening_unit.tick": DeliveryState.DELIVERED,
        "listening_unit.later": DeliveryState.PENDING,
    }
