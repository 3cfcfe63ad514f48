"""The relay prunes by retention on its own schedule, no cron job: two relay processes running
with ``--prune-every`` deliver what is owed and delete the events past their type's retention,
keeping the types kept longer, and neither meets an error from the other's pruning."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from django_domain_events import publish_many, use_dispatcher
from django_domain_events.declaration.events import NamedEvent
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.processes import wait_until
from tests.testapp.models import Effect

from .conftest import Process
from .receivers import IGNORED, RECORD, RECORDED

pytestmark = [pytest.mark.server_db, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

YEAR = 365 * 24 * 3600


def test_running_relays_prune_by_retention_without_a_cron_job(
    start: Callable[..., Process], relay_receivers: Registry
) -> None:
    with use_dispatcher("deferred"):
        short = publish_many([NamedEvent(RECORDED, {"n": n}) for n in range(200)])
        kept = publish_many([NamedEvent(IGNORED, {"n": n}) for n in range(20)])
    settings = {
        "RELAY_GRACE": 0,
        "RELAY_INTERVAL": 0.05,
        # Seconds (the relay tests' settings make them timedeltas): delivered RECORDED events
        # go two seconds after their last delivery, the rest are kept a year.
        "RETENTION": {"default": {"delivered": YEAR}, RECORDED: {"delivered": 2}},
    }
    relays = [
        start("relay_events", "--prune-every", "1s", "--batch-size", "50", settings=settings)
        for _ in range(2)
    ]

    def pruned() -> bool:
        return not OutboxEvent.objects.filter(pk__in=short).exists()

    wait_until(
        pruned,
        "the relays pruning the delivered events",
        timeout=120,
        report=lambda: "\n".join(r.output() for r in relays),
    )

    for relay in relays:
        relay.signal(signal.SIGTERM)
    for relay in relays:
        assert relay.wait() == 0, relay.output()
        assert "Traceback" not in relay.output(), relay.output()
        assert "Pruning by retention every 1 s." in relay.output()
    # Each was delivered, once, before it went.
    effects = Effect.objects.filter(receiver__startswith=f"{RECORD}@")
    assert sorted(effects.values_list("event_id", flat=True)) == sorted(short)
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == set(kept)
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
