"""The event the benchmarks publish, the values every case writes, and the publishing loop."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from django_domain_events import DomainEvent, publish

TOTAL = Decimal("12.50")
"""The ``total`` of every published event; the raw floors store it as the string below."""

TOTAL_TEXT = "12.50"

RAW_EVENT_TYPE = "benchapp.OrderPlaced"
"""What the raw floors store as the type: the same text as ``OrderPlaced.event_type``."""


@dataclass(frozen=True)
class OrderPlaced(DomainEvent):
    """A small, typical event: an integer and a Decimal, validated and encoded on publish."""

    order_id: int
    total: Decimal


def raw_payload(order_id: int) -> dict[str, object]:
    """The JSON a hand-written app would store for ``OrderPlaced(order_id, TOTAL)``."""
    return {"order_id": order_id, "total": TOTAL_TEXT}


def publish_orders(n: int, alias: str) -> None:
    """``publish()`` ``n`` ``OrderPlaced`` events on ``alias``, each in its own ``atomic()``:
    the loop every one-event-per-transaction case times."""
    for i in range(n):
        with transaction.atomic(using=alias):
            publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
