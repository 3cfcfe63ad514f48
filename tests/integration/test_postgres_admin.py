"""The admin's queries on PostgreSQL: counts of large lists are estimated from the planner's
statistics, and the queries about an ordered delivery's line read the ordered index."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from django_domain_events import GiveUp, publish, receiver
from django_domain_events.admin import lines
from django_domain_events.admin.pagination import bounded_count
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

STEP = "integration_admin.step"
ORDERED = "integration_admin.ordered"


@pytest.mark.postgres  # PostgreSQL's planner estimates
def test_large_results_are_estimated_on_postgres() -> None:
    for n in range(30):
        publish("integration_admin.counted", {"n": n})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE domain_events_outbox_event")

    count, estimated = bounded_count(OutboxEvent.objects.all(), exact_limit=10)
    filtered, filtered_estimated = bounded_count(
        OutboxEvent.objects.filter(event_type="integration_admin.counted"), exact_limit=10
    )

    assert estimated
    assert filtered_estimated
    assert 10 < count <= 60
    assert 10 < filtered <= 60


def of(n: int) -> Delivery:
    return Delivery.objects.get(receiver=ORDERED, event__payload__n=n)


@pytest.mark.postgres  # enable_seqscan, a partial index
def test_the_line_queries_read_the_ordered_index(receiver_registry: Registry) -> None:
    @receiver(STEP, name=ORDERED, ordered=True)
    def gives_up_on_the_first(event: Any) -> None:
        if event.payload["n"] == 1:
            raise GiveUp("step 1 cannot be done")

    for n in (1, 2, 3):
        publish(STEP, {"n": n}, ordering_key="a")
    dead, last = of(1), of(3)
    assert (dead.state, last.state) == (DeliveryState.DEAD, DeliveryState.WAITING)
    _, listed = lines.blocked("default")
    queries = {
        "held up by": lines.line_of(last).filter(
            ordering_seq__lt=3, state__in=lines.blocking_states(last.receiver)
        ),
        "ahead": lines.line_of(last)
        .filter(ordering_seq__lt=3)
        .exclude(state=DeliveryState.DELIVERED),
        "behind": lines.waiting_behind(dead),
    }
    assert listed

    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            plans = {name: queryset.explain() for name, queryset in queries.items()}
        finally:
            cursor.execute("RESET enable_seqscan")

    for name, plan in plans.items():
        assert "dde_delivery_ordered_idx" in plan, (name, plan)
