"""Publishing with the deferred dispatcher: the cost of writing the outbox rows alone."""

from __future__ import annotations

from django.db import transaction

from django_domain_events import publish_many
from django_domain_events.models import Delivery, OutboxEvent

from ..benchapp.events import TOTAL, OrderPlaced, publish_orders
from ..benchapp.noops import noop_receivers
from ..harness import Bench, Target, rate_case

BATCH = 1_000
"""Events per ``publish_many()`` call."""


def _publish_each(bench: Bench, receivers: int) -> None:
    alias = bench.alias
    with noop_receivers(receivers, dispatcher="deferred"), bench.timed():
        publish_orders(bench.n, alias)
    bench.expect("events", OutboxEvent.objects.using(alias).count(), bench.n)
    bench.expect("deliveries", Delivery.objects.using(alias).count(), bench.n * receivers)


@rate_case(
    "publish-1",
    "publish() 1 event, 1 receiver, one per atomic()",
    floor="B1",
    target=Target(postgresql=0.85, sqlite=0.65),
)
def publish_one_receiver(bench: Bench) -> None:
    _publish_each(bench, receivers=1)


@rate_case(
    "publish-3",
    "publish() 1 event, 3 receivers, one per atomic()",
    floor="B1",
    target=Target(postgresql=0.75, sqlite=0.55),
)
def publish_three_receivers(bench: Bench) -> None:
    _publish_each(bench, receivers=3)


@rate_case(
    "publish-many",
    f"publish_many() of {BATCH:,} events, 1 receiver, one transaction",
    floor="B2",
    target=Target(postgresql=0.5, sqlite=0.5),
)
def publish_many_batches(bench: Bench) -> None:
    alias = bench.alias
    with (
        noop_receivers(1, dispatcher="deferred"),
        bench.timed(),
        transaction.atomic(using=alias),
    ):
        for start in range(0, bench.n, BATCH):
            stop = min(start + BATCH, bench.n)
            publish_many(
                [OrderPlaced(order_id=i, total=TOTAL) for i in range(start, stop)], using=alias
            )
    bench.expect("events", OutboxEvent.objects.using(alias).count(), bench.n)
    bench.expect("deliveries", Delivery.objects.using(alias).count(), bench.n)
