"""Queries the rest of the app makes on the outbox, kept in one place."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models.functions import Now

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

    def in_lines(self) -> DeliveryQuerySet:
        """Deliveries to ordered receivers that are not delivered yet (``models.IN_LINE``):
        start every query of ordering lines here, so it reads their partial index."""
        from .models import IN_LINE

        return self.filter(IN_LINE)

    def dead(self) -> DeliveryQuerySet:
        """Dead letters."""
        from .models import DeliveryState

        return self.filter(state=DeliveryState.DEAD)

    def pending_past(self, grace: dt.timedelta) -> DeliveryQuerySet:
        """Pending deliveries written more than ``grace`` ago, by the database clock: the
        dispatch at commit did not happen (the process died, or the dispatcher failed)."""
        from .models import DeliveryState

        return self.filter(state=DeliveryState.PENDING, created_at__lte=_db_now() - grace)

    def retry_due(self) -> DeliveryQuerySet:
        """Failed deliveries whose next attempt is due, by the database clock."""
        from .models import DeliveryState

        return self.filter(state=DeliveryState.FAILED, next_attempt_at__lte=_db_now())

    def dispatch_lost(self, timeout: dt.timedelta) -> DeliveryQuerySet:
        """Deliveries dispatched more than ``timeout`` ago and never settled, whose relay lease
        (if any) has ended: their task or their run was lost."""
        from .models import DeliveryState

        now = _db_now()
        return self.filter(
            models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lte=now),
            state=DeliveryState.DISPATCHED,
            dispatched_at__lte=now - timeout,
        )

    def claimed_by_relay(self, relay_id: str) -> DeliveryQuerySet:
        """Dispatched deliveries the relay ``relay_id`` still holds a claim on."""
        from .models import DeliveryState

        return self.filter(state=DeliveryState.DISPATCHED, claimed_by=relay_id)


def _db_now() -> Any:
    # The database's clock, never this host's: relays on several hosts compare times that one
    # clock wrote. Now() is typed as a datetime expression, so "Now() - timedelta" is too.
    return Now()


OutboxEventManager = models.Manager.from_queryset(OutboxEventQuerySet)
DeliveryManager = models.Manager.from_queryset(DeliveryQuerySet)
