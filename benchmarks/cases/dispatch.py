"""Dispatch end to end: publish, commit, and the receiver run and marked delivered."""

from __future__ import annotations

from django.db import transaction

from django_domain_events import publish
from django_domain_events.models import Delivery, DeliveryState

from ..benchapp.events import TOTAL, OrderPlaced
from ..benchapp.noops import noop_receivers
from ..harness import Bench, Target, rate_case


@rate_case(
    "sync-e2e",
    "sync dispatch end to end: publish(), commit, receiver runs, delivery marked",
    floor="B4",
    target=Target(postgresql=0.9, sqlite=0.9),
)
def sync_dispatch_end_to_end(bench: Bench) -> None:
    alias = bench.alias
    with noop_receivers(1, dispatcher="sync"), bench.timed():
        for i in range(bench.n):
            with transaction.atomic(using=alias):
                publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
    delivered = Delivery.objects.using(alias).filter(state=DeliveryState.DELIVERED).count()
    bench.expect("deliveries delivered", delivered, bench.n)
