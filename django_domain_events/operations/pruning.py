"""Deleting settled events past their retention, in batches, while relays and workers run.

An event is pruned only when it is older than the cutoff and every one of its deliveries is
settled (delivered, or dead when dead letters are included) since before the cutoff. Each batch
locks its events (skipping any another transaction holds), checks that again under the lock,
and deletes them with their deliveries. A delivery written for an event meanwhile (a replay)
waits for that lock and then fails on its foreign key instead of vanishing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now

from django_domain_events.delivery.ordering import forget_idle_keys
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

BATCH_SIZE = 1000
"""Events deleted per transaction by default."""


@dataclass
class PruneResult:
    """Events and deliveries deleted, and the batches it took."""

    events: int = 0
    deliveries: int = 0
    batches: int = 0
    keys: int = 0
    """Sequences of ordering keys forgotten: nothing of theirs is left to order."""


def prunable_events(older_than: dt.timedelta, *, using: str, include_dead: bool) -> Q:
    """The condition on ``OutboxEvent`` rows that may be pruned, by the database clock."""
    cutoff = Now() - older_than
    settled = (
        (DeliveryState.DELIVERED, DeliveryState.DEAD)
        if include_dead
        else (DeliveryState.DELIVERED,)
    )
    blocking = Delivery.objects.using(using).filter(
        Q(created_at__gt=cutoff) | Q(last_attempt_at__gt=cutoff) | ~Q(state__in=settled),
        event=OuterRef("pk"),
    )
    return Q(~Exists(blocking), occurred_at__lt=cutoff)


def prune_events(
    older_than: dt.timedelta,
    *,
    using: str | None = None,
    include_dead: bool = False,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
    on_batch: Callable[[PruneResult], None] | None = None,
) -> PruneResult:
    """Delete events older than ``older_than`` whose deliveries are all delivered (or dead,
    with ``include_dead``) since before then, ``batch_size`` per transaction. With
    ``dry_run``, count them instead."""
    alias = using or router.db_for_write(OutboxEvent) or DEFAULT_DB_ALIAS
    condition = prunable_events(older_than, using=alias, include_dead=include_dead)
    events = OutboxEvent.objects.using(alias)
    if dry_run:
        matching = events.filter(condition)
        return PruneResult(
            events=matching.count(),
            deliveries=Delivery.objects.using(alias).filter(event__in=matching).count(),
        )
    skip_locked = connections[alias].features.has_select_for_update_skip_locked
    total = PruneResult()
    while True:
        with transaction.atomic(using=alias):
            candidates = events.filter(condition).order_by("occurred_at")
            if skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            ids = list(candidates.values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            # Checked again now that the rows are locked: a statement sees every delivery
            # committed before it started, such as a retry that was waiting for the lock.
            ids = list(events.filter(condition, pk__in=ids).values_list("pk", flat=True))
            deliveries, _ = Delivery.objects.using(alias).filter(event_id__in=ids).delete()
            deleted, _ = events.filter(pk__in=ids).delete()
        batch = PruneResult(events=deleted, deliveries=deliveries, batches=1)
        total.events += batch.events
        total.deliveries += batch.deliveries
        total.batches += 1
        if on_batch is not None:
            on_batch(batch)
    total.keys = forget_idle_keys(alias, batch_size)
    return total
