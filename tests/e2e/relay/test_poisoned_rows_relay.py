"""``relay_events`` over a row changed after publish to hold a payload nested too deeply to
decode: the process settles that row's deliveries dead, delivers the others and exits 0, in
one pass (``--once``) or as the long-running loop."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable

import pytest

from django_domain_events import publish_many, use_dispatcher
from django_domain_events.declaration.events import NamedEvent
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from tests.processes import wait_until
from tests.stored_rows import UNDECODABLE_BECAUSE, UNDECODABLE_PAYLOAD, change_event

from .conftest import Process
from .receivers import RECORDED

pytestmark = [pytest.mark.server_db, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST = {"RELAY_GRACE": 0, "RELAY_INTERVAL": 0.05}


def publish_with_one_poisoned(count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Publish ``count`` owed events, then make the payload of the second undecodable."""
    with use_dispatcher("deferred"):
        event_ids = publish_many([NamedEvent(RECORDED, {"n": n}) for n in range(count)])
    poisoned = event_ids[1]
    change_event(poisoned, payload=UNDECODABLE_PAYLOAD)
    return poisoned, [event_id for event_id in event_ids if event_id != poisoned]


def assert_settled(poisoned: uuid.UUID, good: list[uuid.UUID]) -> None:
    bad = Delivery.objects.filter(event_id=poisoned)
    assert {row.state for row in bad} == {DeliveryState.DEAD}
    errors = [row.last_error for row in bad]
    assert all(UNDECODABLE_BECAUSE in error for error in errors), errors
    assert set(Delivery.objects.filter(event_id__in=good).values_list("state", flat=True)) == {
        DeliveryState.DELIVERED
    }


def test_relay_once_buries_the_poisoned_row_delivers_the_rest_and_exits_0(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    poisoned, good = publish_with_one_poisoned(6)

    relay = start("relay_events", "--once", settings=FAST)

    assert relay.wait() == 0, relay.output()
    assert relay.totals()["claimed"] == 12
    assert relay.totals()["dead"] == 2
    assert_settled(poisoned, good)


def test_the_relay_loop_carries_on_past_the_poisoned_row(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    poisoned, good = publish_with_one_poisoned(6)
    relay = start("relay_events", settings=FAST)

    wait_until(
        lambda: (
            not Delivery.objects.exclude(
                state__in=(DeliveryState.DELIVERED, DeliveryState.DEAD)
            ).exists()
        ),
        "every delivery to settle",
        report=relay.output,
    )
    relay.signal(signal.SIGTERM)

    assert relay.wait() == 0, relay.output()
    assert_settled(poisoned, good)
