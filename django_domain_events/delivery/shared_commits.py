"""Deliveries that share a commit: several claimed deliveries run in one transaction.

A receiver declared with ``@receiver(..., shares_commit=True)`` keeps all its effects in the
outbox's database (or makes them idempotent). The relay may then run a group of its claimed
deliveries in one transaction: one UPDATE marks them all delivered, each receiver runs, and one
commit settles them with their effects. The effects and the marks still commit together, so a
database effect happens once; what changes is the unit of rollback. If any receiver of the
group raises, or the commit fails, the whole group is rolled back and each of its deliveries is
run again on its own (``run_delivery``), which records the failure as usual. A receiver whose
effects leave the database would repeat them for every delivery of such a group: it must not
share commits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from django_domain_events import signals
from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.registry import Receiver, registry
from django_domain_events.delivery import lost_connections
from django_domain_events.delivery.runner import Outcome, delivery_envelope, run_receiver
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import RUNNABLE_STATES, Delivery, DeliveryState
from django_domain_events.observability import debug_logging, metrics


class _Ran(NamedTuple):
    """One delivery of a group whose receiver ran, to report once the commit is done."""

    owed: OwedDelivery
    receiver: Receiver
    event: DomainEvent | NamedEvent
    envelope: Envelope
    seconds: float


class _GroupChanged(Exception):
    """Another copy settled one of the group's deliveries first: run each on its own."""


def can_share_commit(owed: OwedDelivery) -> bool:
    """Whether ``owed`` may run in a group that shares one commit: its receiver says so, is not
    ``async def``, and gets no ordering key (settling an ordered delivery releases the next in
    line, one at a time); its event is loaded already."""
    if owed.ordering_key or owed.event is None or owed.envelope is None:
        return False
    receiver = registry.get(owed.receiver)
    return receiver is not None and receiver.shares_commit and not receiver.is_async


def run_together(group: Sequence[OwedDelivery]) -> list[Outcome] | None:
    """Run ``group`` (deliveries of one alias, each ``can_share_commit``) in one transaction.

    Return each delivery's outcome, all ``DELIVERED``, once the commit is done; or None when
    the group was rolled back (a receiver raised, another copy settled one of them first, the
    database failed), in which case none of them ran and the caller runs each on its own.
    """
    if not group:
        return []
    using = group[0].using
    now = timezone.now()
    ran: list[_Ran] = []
    try:
        with transaction.atomic(using=using):
            claimed = (
                Delivery.objects.using(using)
                .filter(pk__in=[owed.delivery_id for owed in group], state__in=RUNNABLE_STATES)
                .update(
                    state=DeliveryState.DELIVERED,
                    attempts=F("attempts") + 1,
                    delivered_at=now,
                    last_attempt_at=now,
                    next_attempt_at=None,
                    claimed_by="",
                    claimed_until=None,
                )
            )
            if claimed != len(group):
                raise _GroupChanged
            for owed in group:
                receiver = registry.get(owed.receiver)
                event, envelope = owed.event, owed.envelope
                if receiver is None or event is None or envelope is None:
                    raise _GroupChanged  # can_share_commit() said otherwise; run it alone
                started = time.perf_counter()
                envelope = delivery_envelope(owed, envelope, receiver, owed.attempts + 1)
                run_receiver(owed, receiver, event, envelope, owed.headers)
                ran.append(_Ran(owed, receiver, event, envelope, time.perf_counter() - started))
    except Exception:
        # The rollback undid every claim and effect of the group; run_delivery() runs each
        # again and sorts out what went wrong (failure, NotYet, lost connection).
        return None
    _tell(ran)
    return [Outcome.DELIVERED] * len(ran)


def _tell(ran: Sequence[_Ran]) -> None:
    # As run_delivery() does for one delivery once its commit is done: logs, metrics, signal.
    debug, measured = debug_logging.enabled(), metrics.enabled()
    for done in ran:
        owed = done.owed
        lost_connections.forget(owed)
        if debug:
            debug_logging.delivered(owed, Outcome.DELIVERED.value, owed.attempts + 1, done.seconds)
        if measured:
            metrics.delivered(owed, Outcome.DELIVERED.value, done.seconds)
        signals.send(
            signals.delivery_succeeded,
            sender=type(done.event),
            event=done.event,
            envelope=done.envelope,
            receiver=done.receiver,
            using=owed.using,
        )
