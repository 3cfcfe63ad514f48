"""Skipping dead deliveries in their ordering lines, so the deliveries waiting behind them go on.

The deliveries a skip releases are handed to their dispatchers once the surrounding transaction
commits (at once outside one), as ``publish()`` hands deliveries over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from django.db import DEFAULT_DB_ALIAS, router, transaction

from django_domain_events.delivery.ordering import skip_dead
from django_domain_events.delivery.runner import hand_over_released
from django_domain_events.models import Delivery, DeliveryState


@dataclass(frozen=True)
class SkipResult:
    """What a skip did: the dead deliveries taken out of their lines (``id`` and ``receiver``
    loaded), and how many lines it released."""

    skipped: tuple[Delivery, ...] = ()
    released: int = 0


def skip_dead_deliveries(deliveries: Iterable[Delivery], *, using: str | None = None) -> SkipResult:
    """Take those of ``deliveries`` that are dead and ordered out of their ordering lines, and
    hand the deliveries that were waiting behind them over after the commit. The skipped ones
    stay dead, with their error, and can still be retried; others are left alone."""
    alias = using or router.db_for_write(Delivery) or DEFAULT_DB_ALIAS
    rows = Delivery.objects.using(alias)
    ids = list(
        rows.filter(pk__in=[row.pk for row in deliveries], state=DeliveryState.DEAD)
        .exclude(ordering_key="")
        .values_list("pk", flat=True)
    )
    released = skip_dead(ids, alias) if ids else []
    for owed in released:
        transaction.on_commit(partial(hand_over_released, owed), using=alias)
    skipped = rows.filter(pk__in=ids, ordering_key="").order_by("created_at", "id")
    return SkipResult(skipped=tuple(skipped.only("id", "receiver")), released=len(released))
