"""Putting back deliveries a dispatcher could not hand over: what every dispatcher that writes
its deliveries ``dispatched`` at insert does with those its transport did not take."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import Delivery, DeliveryState

logger = logging.getLogger("django_domain_events")


def mark_undispatched(deliveries: Sequence[OwedDelivery]) -> int:
    """Put deliveries written ``dispatched`` but not handed to their transport back to ``pending``
    (owed, found by the relay after its grace period); return how many."""
    by_alias: dict[str, list[uuid.UUID]] = {}
    for owed in deliveries:
        by_alias.setdefault(owed.using, []).append(owed.delivery_id)
    return sum(
        Delivery.objects.using(alias)
        .filter(pk__in=ids, state=DeliveryState.DISPATCHED)
        .update(
            state=DeliveryState.PENDING,
            dispatched_at=None,
            task_id="",
            claimed_by="",
            claimed_until=None,
        )
        for alias, ids in by_alias.items()
    )


def put_back_unsent(deliveries: Sequence[OwedDelivery]) -> None:
    """``mark_undispatched()`` after commit, where an error would reach nobody: a failure is
    logged, and the relay sends those deliveries anyway once ``DISPATCH_TIMEOUT`` has passed."""
    try:
        mark_undispatched(deliveries)
    except Exception:
        logger.exception(
            "Could not put %d unsent deliveries back to pending; the relay sends them "
            "once DISPATCH_TIMEOUT has passed",
            len(deliveries),
        )
