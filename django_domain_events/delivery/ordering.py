"""Per-key ordering: the deliveries of one ordering key reach an ordered receiver one at a time,
in publish order, even across retries, workers and relays.

Publish order is the order of a per-key sequence, numbered by ``publishing.sequencing``:
publishing an event with an ordering key to an event type that has an ordered receiver takes
the next number of the key's sequence (its ``OrderingKey`` row) and holds that row's lock until
the transaction ends; a second transaction publishing on the same key waits for the first to
commit or roll back. For one key, sequence order is therefore commit order, and a rolled-back
publish gives its number back.

Of the deliveries of one key to one ordered receiver, only the first unsettled one in sequence
order is runnable; those behind it are written ``waiting``, which no dispatcher, relay or task
runs. Settling the runnable one (delivered; or dead, when its receiver skips dead deliveries)
takes the key's lock and, in the same transaction, releases the next in line: ``pending``, or
``dispatched`` for dispatchers that are handed deliveries already marked so. The lock makes
publishing and settling take turns, so a delivery is never left waiting behind one that has
settled. A failed delivery keeps its successors waiting until its retry settles; a dead one
keeps them waiting until a person retries it, unless its receiver says ``on_dead="skip"``.

The relay also releases, on each pass, any waiting delivery with nothing unsettled ahead of it
(after a receiver changed to ``on_dead="skip"``, say): a safety net, not the usual path.
Receivers that are not ordered never touch any of this.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from django_domain_events.declaration.registry import registry, skips_dead
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import Delivery, DeliveryState, OrderingKey
from django_domain_events.publishing.sequencing import UNSETTLED, blocking_states
from django_domain_events.statements import line_statements

# Settling ---------------------------------------------------------------------------------------


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def release_next(owed: OwedDelivery, seq: int | None = None) -> OwedDelivery | None:
    """Release the next delivery waiting behind ``owed``, which has just settled in the
    transaction open on ``owed.using``, and return it, to be handed to its dispatcher once
    that transaction commits. None if nothing waits, or something else unsettled is still
    ahead of it (a delivery a person ran again out of turn). ``seq``, ``owed``'s sequence
    number if known, spares the look for waiting deliveries when no event of the key was
    published after it."""
    sql = line_statements(connections[owed.using])
    key, receiver = owed.ordering_key, owed.receiver
    with sql.connection.cursor() as cursor:
        cursor.execute(sql.lock, [key])
        last = cursor.fetchone()
        if seq is not None and last is not None and last[0] <= seq:
            return None  # nothing behind it: numbers are taken under this lock
        cursor.execute(sql.next_waiting, [sql.moment(timezone.now()), key, receiver])
        waiting = cursor.fetchone()
        if waiting is None:
            return None
        pk, dispatcher, queue, attempts, seq, later = waiting
        blocking = blocking_states(receiver)
        cursor.execute(
            sql.ahead(len(blocking)),
            [key, receiver, seq, *blocking, sql.uuid(owed.delivery_id)],
        )
        if cursor.fetchone() is not None:
            return None
    pk = _as_uuid(pk)
    if later:
        _reschedule(owed.using, pk)
        return None
    return _release(owed.using, pk, receiver, dispatcher, queue, attempts, key)


def _reschedule(alias: str, pk: uuid.UUID) -> bool:
    # Published with a due time still to come: released as scheduled, for the relay to take
    # once due; the line stays held by it meanwhile.
    sql = line_statements(connections[alias])
    with sql.connection.cursor() as cursor:
        cursor.execute(sql.reschedule, [sql.uuid(pk)])
        return bool(cursor.rowcount)


def lock_key(connection: BaseDatabaseWrapper, key: str) -> None:
    """Take ``key``'s lock until the transaction open on ``connection`` ends."""
    with connection.cursor() as cursor:
        cursor.execute(line_statements(connection).lock, [key])


def _release(
    alias: str,
    pk: uuid.UUID,
    receiver: str,
    dispatcher: str,
    queue: str,
    attempts: int,
    key: str,
    *,
    marked: bool | None = None,
) -> OwedDelivery | None:
    if marked is None:
        marked = _marks_dispatched(dispatcher)
    sql = line_statements(connections[alias])
    now = sql.moment(timezone.now())
    state = DeliveryState.DISPATCHED if marked else DeliveryState.PENDING
    with sql.connection.cursor() as cursor:
        cursor.execute(
            sql.release,
            [state, now if marked else None, str(pk) if marked else "", now, sql.uuid(pk)],
        )
        if not cursor.rowcount:
            return None
    return OwedDelivery(pk, receiver, dispatcher, queue, alias, attempts=attempts, ordering_key=key)


def _marks_dispatched(name: str) -> bool:
    try:
        return dispatchers[name].dispatched_at_insert
    except Exception:
        return False  # reported by the system checks; the relay finds it pending


# A person's way out: skipping a dead delivery ------------------------------------------------


def skip_dead(ids: Sequence[uuid.UUID], using: str) -> list[OwedDelivery]:
    """Take the dead deliveries ``ids`` out of their ordering keys' lines, so the deliveries
    waiting behind them go on without them, and return those released (to hand over once this
    returns: ``delivery.hand_over_released()``). The dead deliveries stay dead, with their
    error, and can still be retried; retried, they run on their own, out of their old turn.
    """
    released: list[OwedDelivery] = []
    connection = connections[using]
    rows = Delivery.objects.using(using).filter(pk__in=ids, state=DeliveryState.DEAD)
    for pk, receiver, dispatcher, queue, key in rows.exclude(ordering_key="").values_list(
        "pk", "receiver", "dispatcher", "queue", "ordering_key"
    ):
        with transaction.atomic(using=using):
            lock_key(connection, key)
            taken = rows.filter(pk=pk, ordering_key=key).update(ordering_key="")
            if not taken:
                continue
            owed = OwedDelivery(pk, receiver, dispatcher, queue, using, ordering_key=key)
            following = release_next(owed)
        if following is not None:
            released.append(following)
    return released


# The relay's safety net, and what is blocked -----------------------------------------------------


def release_stranded(alias: str, limit: int = 500) -> int:
    """Make ``pending`` up to ``limit`` waiting deliveries that nothing unsettled is ahead of
    any more, for the relay to dispatch; return how many.

    Settling a delivery releases the next one itself, so this finds work only when a line's
    rules changed under it: a receiver switched to ``on_dead="skip"`` while a dead delivery
    blocked it, or no longer exists. Each is released under its key's lock.
    """
    skipping = [receiver.name for receiver in registry.all() if skips_dead(receiver)]
    ahead = (
        Delivery.objects.using(alias)
        .in_lines()
        .filter(
            Q(state__in=UNSETTLED) | (Q(state=DeliveryState.DEAD) & ~Q(receiver__in=skipping)),
            receiver=OuterRef("receiver"),
            ordering_key=OuterRef("ordering_key"),
            ordering_seq__lt=OuterRef("ordering_seq"),
        )
    )
    free = list(
        Delivery.objects.using(alias)
        .in_lines()
        .filter(~Exists(ahead), state=DeliveryState.WAITING)
        .order_by("ordering_seq")
        .values_list(
            "pk",
            "receiver",
            "dispatcher",
            "queue",
            "attempts",
            "ordering_key",
            "next_attempt_at",
        )[:limit]
    )
    released = 0
    connection = connections[alias]
    now = timezone.now()
    for pk, receiver, dispatcher, queue, attempts, key, due in free:
        with transaction.atomic(using=alias):
            lock_key(connection, key)
            line = (
                Delivery.objects.using(alias).in_lines().filter(receiver=receiver, ordering_key=key)
            )
            seq = line.filter(pk=pk).values_list("ordering_seq", flat=True).first()
            if seq is None:
                continue
            if line.filter(ordering_seq__lt=seq, state__in=blocking_states(receiver)).exists():
                continue
            if due is not None and due > now:
                released += _reschedule(alias, pk)
            elif _release(alias, pk, receiver, dispatcher, queue, attempts, key, marked=False):
                released += 1
    return released


def blocked_lines(alias: str) -> QuerySet[Any, Any]:
    """The (``receiver``, ``ordering_key``) lines held up by a dead delivery whose receiver
    blocks on dead deliveries, each with its ``dead`` count and the ``since`` of its oldest
    dead delivery's last attempt; until a person retries (or skips) it, nothing behind it runs.
    """
    skipping = [receiver.name for receiver in registry.all() if skips_dead(receiver)]
    return (
        Delivery.objects.using(alias)
        .in_lines()
        .filter(state=DeliveryState.DEAD)
        .exclude(receiver__in=skipping)
        .values("receiver", "ordering_key")
        .annotate(dead=Count("pk"), since=Min("last_attempt_at"))
        .order_by("since")
    )


def count_blocked(alias: str) -> int:
    """How many lines (receiver, ordering key) a dead delivery holds up."""
    return blocked_lines(alias).count()


def forget_idle_keys(alias: str, batch_size: int = 1000) -> int:
    """Delete the sequences of keys that no delivery waits on or is held up by any more (all
    of the key's deliveries are delivered, or pruned), ``batch_size`` per transaction; return
    how many. ``prune_events`` calls it, so the table does not grow with every key ever used.

    A key published on again starts a new sequence: numbers only order the deliveries of a
    key that are not delivered yet, and there are none. Each key is locked and checked again
    before it goes, so a publish on it at the same moment is not lost.
    """
    busy = (
        Delivery.objects.using(alias)
        .filter(ordering_key=OuterRef("key"))
        .exclude(state=DeliveryState.DELIVERED)
    )
    keys = OrderingKey.objects.using(alias)
    skip_locked = connections[alias].features.has_select_for_update_skip_locked
    forgotten = 0
    while True:
        with transaction.atomic(using=alias):
            idle = keys.filter(~Exists(busy)).order_by()
            if skip_locked:
                idle = idle.select_for_update(skip_locked=True)
            found = list(idle.values_list("pk", flat=True)[:batch_size])
            if not found:
                return forgotten
            # Checked again under the locks: a publish that held one has committed since.
            deleted, _ = keys.filter(~Exists(busy), pk__in=found).delete()
        forgotten += deleted
        if len(found) < batch_size:
            return forgotten
