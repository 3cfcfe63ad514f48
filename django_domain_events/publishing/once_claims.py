"""Once receivers: only the first event a ``@receiver(..., once=True)`` matches gets a delivery.

The first publish to reach such a receiver inserts its ``OnceReceiverClaim`` row in the
publishing transaction. A concurrent transaction inserting the same row waits for that one:
if it commits, the second one's insert does nothing and its delivery is dropped; if it rolls
back, the second one wins. So exactly one committed event is delivered, whatever the process.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from django_domain_events.declaration.registry import registry
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import OnceReceiverClaim


def keep_claimed(
    alias: str, deliveries: Sequence[tuple[Any, ...]], owed: Sequence[OwedDelivery]
) -> tuple[list[tuple[Any, ...]], list[OwedDelivery]]:
    """The delivery rows (and those of their ``owed`` twins there are: a scheduled delivery
    has none) left once the once receivers among them have claimed their first event: a once
    receiver keeps the delivery of the first of these events if it wins its claim, and none
    otherwise."""
    first: dict[str, uuid.UUID] = {}
    once = set()
    for row in deliveries:
        # Delivery rows are (id, event_id, receiver, ...): models.DELIVERY_COLUMNS.
        name = row[2]
        found = registry.get(name)
        if found is not None and found.once:
            once.add(name)
            first.setdefault(name, row[1])
    if not first:
        return list(deliveries), list(owed)
    won = _claim(alias, first)
    kept_rows: list[tuple[Any, ...]] = []
    for row in deliveries:
        name = row[2]
        if name in once and not (name in won and first[name] == row[1]):
            continue
        kept_rows.append(row)
    if len(kept_rows) == len(deliveries):
        return kept_rows, list(owed)
    kept = {row[0] for row in kept_rows}
    return kept_rows, [item for item in owed if item.delivery_id in kept]


def _claim(alias: str, first: dict[str, uuid.UUID]) -> set[str]:
    claims = OnceReceiverClaim.objects.using(alias)
    taken = set(claims.filter(receiver__in=list(first)).values_list("receiver", flat=True))
    wanted = {name: event_id for name, event_id in first.items() if name not in taken}
    if not wanted:
        return set()
    now = timezone.now()
    # Waits, on a unique key another open transaction inserted, for that transaction's end.
    claims.bulk_create(
        [
            OnceReceiverClaim(receiver=name, event_id=event_id, claimed_at=now)
            for name, event_id in wanted.items()
        ],
        ignore_conflicts=True,
    )
    stored = claims.filter(receiver__in=list(wanted)).values_list("receiver", "event_id")
    return {name for name, event_id in stored if wanted[name] == event_id}
