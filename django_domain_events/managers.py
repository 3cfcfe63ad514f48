"""Queries the rest of the app makes on the outbox, kept in one place."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from .models import Delivery, OutboxEvent  # noqa: F401 - named in the generics below


class OutboxEventQuerySet(models.QuerySet["OutboxEvent"]):
    """Queries over outbox events."""

    def of_type(self, event_type: str) -> OutboxEventQuerySet:
        """Events of one type."""
        return self.filter(event_type=event_type)


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    """Queries over deliveries."""

    def runnable(self) -> DeliveryQuerySet:
        """Deliveries whose receiver may still run: pending, dispatched or failed."""
        from .models import RUNNABLE_STATES

        return self.filter(state__in=RUNNABLE_STATES)

    def owed(self, now: dt.datetime | None = None) -> DeliveryQuerySet:
        """Deliveries due now: pending or failed with ``next_attempt_at`` reached.

        Without ``now`` every pending or failed delivery counts, due or not.
        """
        from .models import DeliveryState

        due: dict[str, Any] = {"next_attempt_at__lte": now} if now is not None else {}
        return self.filter(state__in=(DeliveryState.PENDING, DeliveryState.FAILED), **due)

    def dead(self) -> DeliveryQuerySet:
        """Dead letters."""
        from .models import DeliveryState

        return self.filter(state=DeliveryState.DEAD)


OutboxEventManager = models.Manager.from_queryset(OutboxEventQuerySet)
DeliveryManager = models.Manager.from_queryset(DeliveryQuerySet)
