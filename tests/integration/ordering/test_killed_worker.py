"""A worker killed (SIGKILL, pool process included) in the middle of the lines: the broker hands
its unacknowledged tasks to the others, the run it cut short left nothing behind, and every
key's events still reach the ordered receiver once each, in publish order.

A relay runs alongside, as in production: a worker killed after settling a delivery and before
sending the task of the one it released leaves that one dispatched without a task, which only
the relay sends again (after its dispatch timeout)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay, RelayTotals
from django_domain_events.models import Delivery, DeliveryState
from tests.brokers import Broker
from tests.processes import CeleryWorker, wait_until

from .conftest import report_on, wait_until_delivered
from .lines import assert_in_publish_order, publish_interleaved, runs
from .receivers import ORDERED

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]

KEYS, PER_KEY = 20, 20


def test_a_worker_killed_mid_line_leaves_every_line_in_order(
    broker: Broker,
    start_workers: Callable[[int, Broker], list[CeleryWorker]],
    stepped_receivers: Registry,
) -> None:
    keys = [f"x{index:02}" for index in range(KEYS)]
    # Every line is written before a worker runs, so lines are certainly under way (and
    # deliveries waiting) when one is killed, however fast the publisher is beside them.
    publish_interleaved(keys, PER_KEY)
    workers = start_workers(3, broker)
    wait_until(
        lambda: sum(map(len, runs(ORDERED).values())) >= KEYS * PER_KEY // 4,
        "a quarter of the lines to be delivered",
        timeout=120,
        interval=0.25,
        report=report_on(workers),
    )

    workers[0].kill()
    log = workers[0].log()
    held = log.count("] received") - log.count("] succeeded in")
    print(f"\nkilled worker: {held} tasks received and not finished")
    assert Delivery.objects.filter(state=DeliveryState.WAITING).exists()
    workers[0].start()

    relay = Relay(grace=1, dispatch_timeout=5)
    totals = RelayTotals()
    wait_until_delivered(
        2 * KEYS * PER_KEY,
        timeout=120,
        workers=workers,
        each_poll=lambda: totals.add(relay.run_pass()),
    )
    print(f"killed worker: relay {totals}")
    assert_in_publish_order(keys, PER_KEY)
