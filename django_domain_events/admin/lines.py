"""Ordering lines as the admin shows them: what holds a waiting delivery up, what waits behind
a delivery, and which lines a dead delivery blocks.

Every query here stays inside one line (receiver, ordering key) or looks at dead deliveries
only, so it reads the partial index on unsettled ordered deliveries or the state index, never
the delivered millions.
"""

from __future__ import annotations

import datetime as dt
import operator
import uuid
from dataclasses import dataclass
from functools import reduce

from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext

from django_domain_events.declaration.registry import registry, skips_dead
from django_domain_events.delivery.ordering import blocked_lines, count_blocked
from django_domain_events.models import RUNNABLE_STATES, Delivery, DeliveryState

LINE_COUNT_LIMIT = 10_000
"""Deliveries of one line counted exactly; past this many a count says "more than"."""

BLOCKED_LISTED = 20
"""Blocked lines the dashboard lists (it counts them all)."""


@dataclass(frozen=True)
class BlockedLine:
    """A line (receiver, ordering key) held up by a dead delivery, as the dashboard lists it."""

    receiver: str
    ordering_key: str
    dead: int
    since: dt.datetime | None
    """When its oldest dead delivery last ran."""
    head: uuid.UUID | None
    """Its first dead delivery in sequence order: the one to retry or skip."""
    waiting: int


def line_of(delivery: Delivery) -> QuerySet[Delivery]:
    """The deliveries of ``delivery``'s line: same receiver, same ordering key."""
    return (
        Delivery.objects.using(delivery._state.db)
        .in_lines()
        .filter(receiver=delivery.receiver, ordering_key=delivery.ordering_key)
    )


def blocking_states(receiver_name: str) -> tuple[str, ...]:
    """States of a delivery that keep the deliveries behind it in its line waiting: runnable
    and scheduled ones, and dead ones unless the receiver skips them."""
    if skips_dead(registry.get(receiver_name)):
        return (*RUNNABLE_STATES, DeliveryState.SCHEDULED)
    return (*RUNNABLE_STATES, DeliveryState.SCHEDULED, DeliveryState.DEAD)


def held_up_by(delivery: Delivery) -> Delivery | None:
    """The first delivery ahead of waiting ``delivery`` in its line that keeps it waiting, or
    None when nothing does any more (the relay's next pass releases it)."""
    return (
        line_of(delivery)
        .filter(
            ordering_seq__lt=delivery.ordering_seq,
            state__in=blocking_states(delivery.receiver),
        )
        .order_by("ordering_seq")
        .only("id", "state", "ordering_seq", "last_attempt_at")
        .first()
    )


def capped_count(queryset: QuerySet[Delivery]) -> int:
    """The rows of ``queryset``, reading at most ``LINE_COUNT_LIMIT + 1`` of them."""
    return queryset.order_by()[: LINE_COUNT_LIMIT + 1].count()


def count_text(count: int, text: str) -> str:
    """``text`` with its ``%(count)s`` filled in: ``count``, or "more than" the limit past it."""
    if count > LINE_COUNT_LIMIT:
        return text % {"count": gettext("more than %(limit)d") % {"limit": LINE_COUNT_LIMIT}}
    return text % {"count": count}


def ahead_of(delivery: Delivery) -> int:
    """Unsettled deliveries ahead of ``delivery`` in its line (at most the limit, plus one)."""
    ahead = line_of(delivery).filter(ordering_seq__lt=delivery.ordering_seq)
    return capped_count(ahead.exclude(state=DeliveryState.DELIVERED))


def waiting_behind(delivery: Delivery) -> QuerySet[Delivery]:
    """The waiting deliveries behind ``delivery`` in its line."""
    return line_of(delivery).filter(
        state=DeliveryState.WAITING, ordering_seq__gt=delivery.ordering_seq
    )


def blocked(using: str, limit: int = BLOCKED_LISTED) -> tuple[int, tuple[BlockedLine, ...]]:
    """How many lines a dead delivery blocks on ``using``, and the first ``limit`` of them,
    longest blocked first, each with its first dead delivery and how many wait in it."""
    found = list(blocked_lines(using)[:limit])
    total = len(found) if len(found) < limit else count_blocked(using)
    if not found:
        return total, ()
    lines = reduce(
        operator.or_, (Q(receiver=r["receiver"], ordering_key=r["ordering_key"]) for r in found)
    )
    rows = Delivery.objects.using(using).in_lines().filter(lines)
    heads: dict[tuple[str, str], uuid.UUID] = {}
    dead = rows.filter(state=DeliveryState.DEAD).order_by("ordering_seq")
    for receiver, key, pk in dead.values_list("receiver", "ordering_key", "pk"):
        heads.setdefault((receiver, key), pk)
    waiting = {
        (receiver, key): n
        for receiver, key, n in rows.filter(state=DeliveryState.WAITING)
        .order_by()
        .values_list("receiver", "ordering_key")
        .annotate(n=Count("pk"))
    }
    return total, tuple(
        BlockedLine(
            receiver=line["receiver"],
            ordering_key=line["ordering_key"],
            dead=line["dead"],
            since=line["since"],
            head=heads.get((line["receiver"], line["ordering_key"])),
            waiting=waiting.get((line["receiver"], line["ordering_key"]), 0),
        )
        for line in found
    )


def holding_up(queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
    """The dead deliveries of ``queryset`` that hold up their line: ordered, and their
    receiver blocks on dead deliveries."""
    skipping = [receiver.name for receiver in registry.all() if skips_dead(receiver)]
    return (
        queryset.filter(state=DeliveryState.DEAD)
        .exclude(ordering_key="")
        .exclude(receiver__in=skipping)
    )
