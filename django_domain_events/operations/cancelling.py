"""Cancelling owed deliveries: a person decides a delivery must not run after all.

A cancelled delivery is settled and kept, in state ``cancelled``, as part of the audit trail;
nothing runs it again (a task already queued for it finds it not runnable and does nothing).
Only owed deliveries can be cancelled: pending, dispatched, failed, waiting or scheduled. One
whose receiver is running right now is left alone where the database can tell (its row is
locked: PostgreSQL, MySQL/MariaDB) and counted as skipped.

An ordered delivery leaves its ordering line when cancelled, as a skipped dead one does, and
the delivery waiting behind it is handed to its dispatcher once the surrounding transaction
commits (at once outside one).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction

from django_domain_events.delivery.ordering import lock_key, release_next
from django_domain_events.delivery.runner import hand_over_released
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import CANCELLABLE_STATES, Delivery, DeliveryState
from django_domain_events.observability import metrics
from django_domain_events.operations.selection import DeliverySelection, SelectionError

logger = logging.getLogger("django_domain_events")

BATCH_SIZE = 500
"""Deliveries cancelled per transaction by ``cancel_selected()``."""


@dataclass
class CancelResult:
    """What a cancel did: the ids of the deliveries cancelled, how many of those asked for were
    left alone (settled already, or running), and how many ordering lines it let go on."""

    cancelled: list[uuid.UUID] = field(default_factory=list)
    skipped: int = 0
    released: int = 0

    def add(self, other: CancelResult) -> None:
        """Add ``other``'s counts to these."""
        self.cancelled.extend(other.cancelled)
        self.skipped += other.skipped
        self.released += other.released


def _alias(using: str | None) -> str:
    return using or router.db_for_write(Delivery) or DEFAULT_DB_ALIAS


def cancel_deliveries(
    deliveries: Iterable[Delivery | uuid.UUID], *, using: str | None = None
) -> CancelResult:
    """Cancel those of ``deliveries`` (rows or ids) that are still owed; leave the others
    alone, counted as skipped."""
    ids = [row.pk if isinstance(row, Delivery) else row for row in deliveries]
    return _cancel(ids, _alias(using))


def _cancel(ids: Sequence[uuid.UUID], alias: str) -> CancelResult:
    result = CancelResult()
    if not ids:
        return result
    rows = Delivery.objects.using(alias)
    connection = connections[alias]
    skip_locked = connection.features.has_select_for_update_skip_locked
    owed = rows.filter(pk__in=ids, state__in=CANCELLABLE_STATES)
    released: list[OwedDelivery] = []
    with transaction.atomic(using=alias):
        candidates = owed.filter(ordering_key="").order_by("created_at", "id")
        if skip_locked:
            # A delivery whose receiver runs now holds its row's lock: left alone, not waited on.
            candidates = candidates.select_for_update(skip_locked=True)
        unordered = list(candidates.values_list("pk", "receiver"))
        if unordered:
            # Without row locks the UPDATE checks again that each is still owed.
            taken = owed.filter(pk__in=[pk for pk, _ in unordered])
            if taken.update(**_CANCELLED) == len(unordered):
                result.cancelled.extend(pk for pk, _ in unordered)
            else:
                # Some settled in the meantime (SQLite): count the ones cancelled here.
                mine = set(
                    rows.filter(
                        pk__in=[pk for pk, _ in unordered], state=DeliveryState.CANCELLED
                    ).values_list("pk", flat=True)
                )
                unordered = [(pk, receiver) for pk, receiver in unordered if pk in mine]
                result.cancelled.extend(mine)
        ordered = list(
            owed.exclude(ordering_key="").values_list(
                "pk", "receiver", "dispatcher", "queue", "ordering_key"
            )
        )
        receivers = [receiver for _, receiver in unordered]
        for pk, receiver, dispatcher, queue, key in ordered:
            # As publishing and settling do: under the key's lock, so the one behind it is
            # never left waiting behind a delivery that has gone.
            lock_key(connection, key)
            one = owed.filter(pk=pk, ordering_key=key)
            if skip_locked and not one.select_for_update(skip_locked=True).values_list("pk"):
                continue
            if not one.update(**_CANCELLED, ordering_key=""):
                continue
            gone = OwedDelivery(pk, receiver, dispatcher, queue, alias, ordering_key=key)
            following = release_next(gone)
            result.cancelled.append(pk)
            receivers.append(receiver)
            if following is not None:
                released.append(following)
    result.skipped = len(set(ids)) - len(result.cancelled)
    result.released = len(released)
    for following in released:
        transaction.on_commit(partial(hand_over_released, following), using=alias)
    if result.cancelled:
        logger.info("Cancelled %d deliveries", len(result.cancelled))
        if metrics.enabled():
            transaction.on_commit(partial(metrics.cancelled, receivers), using=alias)
    return result


_CANCELLED = {
    "state": DeliveryState.CANCELLED,
    "next_attempt_at": None,
    "claimed_by": "",
    "claimed_until": None,
}
"""What cancelling writes: the state, and no due time or claim left."""


def cancel_selected(
    selection: DeliverySelection,
    *,
    using: str | None = None,
    dry_run: bool = False,
    on_batch: Callable[[CancelResult], None] | None = None,
) -> CancelResult:
    """Cancel the selected owed deliveries, ``BATCH_SIZE`` per transaction. In a dry run,
    nothing changes and ``cancelled`` holds the ids that would be cancelled."""
    invalid = set(selection.states) - set(CANCELLABLE_STATES)
    if invalid:
        raise SelectionError(
            f"Only owed deliveries can be cancelled ({', '.join(CANCELLABLE_STATES)}), not "
            f"{', '.join(sorted(invalid))}."
        )
    alias = _alias(using)
    result = CancelResult()
    ids = list(selection.deliveries(alias).values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        batch = CancelResult(cancelled=list(chunk)) if dry_run else _cancel(chunk, alias)
        result.add(batch)
        if on_batch is not None:
            on_batch(batch)
    return result
