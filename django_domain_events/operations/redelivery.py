"""Running things again on request: replay events to receivers, retry dead or failed deliveries.

Both claim the deliveries they create or re-arm in their own transaction, as a relay claims owed
deliveries, and hand them to their dispatchers through ``Relay.hand_over()`` once the surrounding
transaction commits (at once outside one). If the process dies in between, the claims lapse and
a relay dispatches them later.

``replay_events()`` and ``retry_deliveries()`` act on rows already chosen (the admin's
actions); ``replay_selected()`` and ``retry_selected()`` choose them from command-line
selections and work through them in batches (the management commands).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.utils import timezone

from django_domain_events.conf import settings
from django_domain_events.declaration.registry import Receiver, is_ordered, registry
from django_domain_events.delivery.relay import Relay, RelayTotals
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.dispatchers.override import dispatcher_override
from django_domain_events.ids import uuid7
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.selection import (
    DeliverySelection,
    EventSelection,
    SelectionError,
)
from django_domain_events.publishing import sequencing

RETRYABLE_STATES = (DeliveryState.FAILED, DeliveryState.DEAD)
"""States of deliveries a person can retry."""

BATCH_SIZE = 500
"""Events (replay) or deliveries (retry) handled per transaction by the ``*_selected``
functions."""


@dataclass(frozen=True)
class ReplayedEvent:
    """One event replayed (or, in a dry run, that would be), with the receivers it goes to."""

    event_id: uuid.UUID
    event_type: str
    receivers: tuple[str, ...]


@dataclass
class RedeliveryResult:
    """What a replay or retry did: deliveries created or re-armed, the events replayed, and
    what handing the deliveries over came to. In a dry run nothing is written and ``totals``
    stays zero; inside a transaction, ``totals`` counts the claims only, as the deliveries are
    handed over when it commits."""

    deliveries: int = 0
    events: list[ReplayedEvent] = field(default_factory=list)
    totals: RelayTotals = field(default_factory=RelayTotals)


def _alias(using: str | None) -> str:
    return using or router.db_for_write(Delivery) or DEFAULT_DB_ALIAS


# Acting on chosen rows ----------------------------------------------------------------------


def replay_events(
    events: Iterable[OutboxEvent], receivers: Sequence[Receiver], *, using: str | None = None
) -> list[Delivery]:
    """Write a new delivery of each event to each of ``receivers`` that receives its type,
    dispatch them after the commit, and return the deliveries written. Earlier deliveries stay
    as they are."""
    rows, _ = _replay(list(events), receivers, _alias(using))
    return rows


def retry_deliveries(deliveries: Iterable[Delivery], *, using: str | None = None) -> list[Delivery]:
    """Run those of ``deliveries`` that are failed or dead again after the commit, each with a
    fresh set of attempts, and return them. Their last error stays until the next attempt
    replaces it. Deliveries in other states are left alone."""
    ids = [row.pk for row in deliveries]
    rows, _ = _retry(ids, RETRYABLE_STATES, _alias(using))
    return rows


def _replay(
    events: Sequence[OutboxEvent], receivers: Sequence[Receiver], using: str
) -> tuple[list[Delivery], RelayTotals]:
    rows = [
        _new_delivery(event, receiver)
        for event in events
        for receiver in receivers
        if receiver.matches(event.event_type)
    ]
    if not rows:
        return [], RelayTotals()
    relay = Relay(using=using)
    with transaction.atomic(using=using):
        # A concurrent prune_events deleting one of the events makes this INSERT fail on its
        # foreign key: the replay errors rather than writing deliveries that vanish.
        sequencing.sequence_models(connections[using], using, rows)
        Delivery.objects.using(using).bulk_create(rows)
        claimed = relay.claim([row.pk for row in rows], states=(DeliveryState.PENDING,))
    return rows, _hand_over_on_commit(relay, claimed, using)


def _new_delivery(event: OutboxEvent, receiver: Receiver) -> Delivery:
    now = timezone.now()
    return Delivery(
        id=uuid7(),
        event_id=event.pk,
        receiver=receiver.name,
        dispatcher=dispatcher_override() or receiver.dispatcher or settings.DISPATCHER,
        queue=receiver.queue or "",
        state=DeliveryState.PENDING,
        created_at=now,
        next_attempt_at=now,
        ordering_key=event.ordering_key if is_ordered(receiver) else "",
    )


def _retry(
    ids: Sequence[uuid.UUID], states: Sequence[str], using: str
) -> tuple[list[Delivery], RelayTotals]:
    if not ids:
        return [], RelayTotals()
    relay = Relay(using=using)
    with transaction.atomic(using=using):
        _lock_events(ids, using)
        claimed = relay.claim(ids, states=states, attempts=0, next_attempt_at=None)
    totals = _hand_over_on_commit(relay, claimed, using)
    retried = {owed.delivery_id for owed in claimed}
    rows = list(Delivery.objects.using(using).filter(pk__in=retried).order_by("created_at"))
    return rows, totals


def _hand_over_on_commit(relay: Relay, claimed: list[OwedDelivery], using: str) -> RelayTotals:
    # As publish() does: before the surrounding transaction commits, a worker would not see
    # the claimed rows, and a "sync" receiver would run on changes that may yet roll back.
    totals = RelayTotals(claimed=len(claimed))
    if claimed:
        transaction.on_commit(lambda: totals.add(relay.hand_over(claimed)), using=using)
    return totals


def _lock_events(delivery_ids: Sequence[uuid.UUID], using: str) -> None:
    # A dead delivery may belong to an event prune_events is deleting right now. Holding its
    # event's row lock makes them take turns: prune skips an event locked here, and if prune
    # got there first, this waits and then finds the delivery gone.
    if not connections[using].features.has_select_for_update:
        return
    event_ids = Delivery.objects.using(using).filter(pk__in=delivery_ids).values("event_id")
    list(
        OutboxEvent.objects.using(using)
        .filter(pk__in=event_ids)
        .select_for_update()
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# Acting on selections -----------------------------------------------------------------------


def check_receiver_names(names: Sequence[str]) -> None:
    """Raise ``SelectionError`` for a receiver name no registered receiver has."""
    unknown = [name for name in names if registry.get(name) is None]
    if unknown:
        known = sorted({receiver.name for receiver in registry.all()})
        raise SelectionError(
            f"No receiver is registered as {', '.join(map(repr, unknown))}. Registered "
            f"receivers: {', '.join(known) or 'none'}."
        )


def replay_selected(
    selection: EventSelection,
    *,
    using: str | None = None,
    receivers: Sequence[str] | None = None,
    dry_run: bool = False,
    on_batch: Callable[[RedeliveryResult], None] | None = None,
) -> RedeliveryResult:
    """Replay the selected events to all their registered receivers, or to those named in
    ``receivers``, ``BATCH_SIZE`` events per transaction."""
    if receivers is not None:
        check_receiver_names(receivers)
    alias = _alias(using)
    result = RedeliveryResult()
    # Receivers named explicitly may be of any namespace; the event row does not say which
    # namespace it was published to, so without names the default one's receivers are chosen.
    named = None
    if receivers is not None:
        named = [r for r in {r.name: r for r in registry.all()}.values() if r.name in receivers]
    ids = list(selection.events(alias).values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH_SIZE):
        events = list(
            OutboxEvent.objects.using(alias)
            .filter(pk__in=ids[start : start + BATCH_SIZE])
            .order_by("occurred_at", "id")
            .only("id", "event_type", "ordering_key")
        )
        batch = RedeliveryResult()
        chosen: list[Receiver] = []
        for event in events:
            if named is None:
                mine = list(registry.receivers_for(event.event_type))
            else:
                mine = [receiver for receiver in named if receiver.matches(event.event_type)]
            chosen.extend(receiver for receiver in mine if receiver not in chosen)
            batch.events.append(
                ReplayedEvent(event.pk, event.event_type, tuple(r.name for r in mine))
            )
            batch.deliveries += len(mine)
        if not dry_run:
            rows, batch.totals = _replay(events, chosen, alias)
            batch.deliveries = len(rows)
        _merge(result, batch)
        if on_batch is not None:
            on_batch(batch)
    return result


def retry_selected(
    selection: DeliverySelection,
    *,
    using: str | None = None,
    dry_run: bool = False,
    on_batch: Callable[[RedeliveryResult], None] | None = None,
) -> RedeliveryResult:
    """Retry the selected dead or failed deliveries, ``BATCH_SIZE`` per transaction."""
    invalid = set(selection.states) - set(RETRYABLE_STATES)
    if invalid:
        raise SelectionError(
            f"Only dead and failed deliveries can be retried, not {', '.join(sorted(invalid))}."
        )
    alias = _alias(using)
    result = RedeliveryResult()
    ids = list(selection.deliveries(alias).values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        batch = RedeliveryResult(deliveries=len(chunk))
        if not dry_run:
            rows, batch.totals = _retry(chunk, selection.states, alias)
            batch.deliveries = len(rows)
        _merge(result, batch)
        if on_batch is not None:
            on_batch(batch)
    return result


def _merge(result: RedeliveryResult, batch: RedeliveryResult) -> None:
    result.deliveries += batch.deliveries
    result.events.extend(batch.events)
    result.totals.add(batch.totals)
