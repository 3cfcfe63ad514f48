"""Retention: how long settled deliveries, and so their events, are kept, per event type.

A retention maps a settled state (``"delivered"``, ``"dead"``) to a ``timedelta``, or to None
for "kept for ever". For one event type each state is looked up, first match wins, in:

1. ``DOMAIN_EVENTS["RETENTION"]["<event type>"]``;
2. the event class's ``retention`` attribute;
3. ``DOMAIN_EVENTS["RETENTION"]["default"]``;
4. the built-in default: delivered ones ``PRUNE_RETENTION_DAYS``, dead ones for ever.

An event is pruned once every one of its deliveries is past its state's retention, counted
from its last attempt (or its creation, if it never ran); an event no receiver got counts as
delivered when it occurred.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now

from django_domain_events.conf import settings
from django_domain_events.declaration.events import event_classes
from django_domain_events.models import SETTLED_STATES, Delivery, DeliveryState

Retention = Mapping[str, dt.timedelta | None]
"""Settled state → how long its deliveries are kept (None: for ever)."""

RETAINED_STATES: tuple[str, ...] = tuple(str(state) for state in SETTLED_STATES)
"""The states a retention may name."""

DEFAULT_KEY = "default"
"""The key of ``DOMAIN_EVENTS["RETENTION"]`` that applies to every event type."""


def builtin_retention() -> dict[str, dt.timedelta | None]:
    """What applies where nothing else says: delivered ones for ``PRUNE_RETENTION_DAYS``, the
    rest (dead letters) for ever."""
    kept: dict[str, dt.timedelta | None] = dict.fromkeys(RETAINED_STATES)
    kept[DeliveryState.DELIVERED] = dt.timedelta(days=settings.PRUNE_RETENTION_DAYS)
    return kept


def declared_retentions() -> dict[str, Retention]:
    """The ``retention`` attribute of every event class that sets one, by event type."""
    return {cls.event_type: cls.retention for cls in event_classes() if cls.retention is not None}


def retention_for(event_type: str) -> dict[str, dt.timedelta | None]:
    """The retention of ``event_type``, each state looked up as the module says."""
    configured = settings.RETENTION
    declared = declared_retentions().get(event_type, {})
    layers = (configured.get(DEFAULT_KEY, {}), declared, configured.get(event_type, {}))
    resolved = builtin_retention()
    for layer in layers:
        resolved.update({state: layer[state] for state in RETAINED_STATES if state in layer})
    return resolved


@dataclass(frozen=True)
class RetentionGroup:
    """Event types that share one retention: those named in ``event_types``, or with
    ``others``, every event type but those in ``event_types``."""

    retention: Mapping[str, dt.timedelta | None]
    event_types: frozenset[str]
    others: bool = False

    def types_condition(self) -> Q:
        """The condition on ``OutboxEvent`` rows of these types."""
        if self.others:
            return ~Q(event_type__in=sorted(self.event_types)) if self.event_types else Q()
        return Q(event_type__in=sorted(self.event_types))


def retention_groups() -> list[RetentionGroup]:
    """Every event type's retention, as few groups as the retentions differ: the types
    without a retention of their own first (all the others), then one group per retention."""
    named = {key for key in settings.RETENTION if key != DEFAULT_KEY}
    named.update(declared_retentions())
    default = retention_for("")  # a type no one names: the default layers only
    by_retention: dict[tuple[Any, ...], set[str]] = {}
    special: set[str] = set()
    for event_type in sorted(named):
        retention = retention_for(event_type)
        if retention == default:
            continue
        special.add(event_type)
        by_retention.setdefault(_as_key(retention), set()).add(event_type)
    groups = [RetentionGroup(default, frozenset(special), others=True)]
    groups.extend(
        RetentionGroup(dict(key), frozenset(types)) for key, types in by_retention.items()
    )
    return groups


def _as_key(retention: Mapping[str, dt.timedelta | None]) -> tuple[Any, ...]:
    return tuple(sorted(retention.items()))


def past_retention(retention: Retention) -> Q | None:
    """The condition on ``OutboxEvent`` rows past ``retention``, by the database clock; None
    if it keeps everything."""
    ages = {state: age for state, age in retention.items() if age is not None}
    if not ages:
        return None
    blocking = ~Q(state__in=sorted(ages))
    for state, age in ages.items():
        cutoff = Now() - age
        blocking |= Q(state=state) & (Q(created_at__gt=cutoff) | Q(last_attempt_at__gt=cutoff))
    held = Delivery.objects.filter(blocking, event=OuterRef("pk"))
    # No delivery is created before its event: none is past its retention while the event is
    # younger than the shortest one. Said outright, it lets the query read the time index.
    condition = Q(~Exists(held), occurred_at__lt=Now() - min(ages.values()))
    delivered = retention.get(DeliveryState.DELIVERED)
    if delivered != min(ages.values()):
        # An event no receiver got counts as delivered when it occurred.
        some = Q(Exists(Delivery.objects.filter(event=OuterRef("pk"))))
        condition &= some if delivered is None else some | Q(occurred_at__lt=Now() - delivered)
    return condition


def override(older_than: dt.timedelta, *, include_dead: bool) -> dict[str, dt.timedelta | None]:
    """The retention ``prune_events --older-than`` gives every event type: delivered ones
    ``older_than``, dead ones too with ``include_dead`` (else for ever)."""
    kept: dict[str, dt.timedelta | None] = dict.fromkeys(RETAINED_STATES)
    kept[DeliveryState.DELIVERED] = older_than
    if include_dead:
        kept[DeliveryState.DEAD] = older_than
    return kept


def with_dead_included(retention: Retention) -> dict[str, dt.timedelta | None]:
    """``retention`` with dead letters kept for ever pruned after the delivered ones' time
    instead: ``prune_events --include-dead`` without ``--older-than``."""
    kept = dict(retention)
    if kept.get(DeliveryState.DEAD) is None:
        kept[DeliveryState.DEAD] = kept.get(DeliveryState.DELIVERED)
    return kept


def retention_problems(value: Any, where: str) -> Iterator[str]:
    """What is wrong with ``value`` as a retention (a dict of states to timedelta or None),
    each as a sentence naming ``where`` it was found."""
    if not isinstance(value, Mapping):
        yield (
            f"{where} is {value!r}; it must be a dict of states to a timedelta or None, such as "
            f'{{"delivered": timedelta(days=7), "dead": None}}.'
        )
        return
    for state, age in value.items():
        if state not in RETAINED_STATES:
            yield (
                f"{where} names the state {state!r}, which is not settled; name "
                f"{' or '.join(repr(s) for s in RETAINED_STATES)}."
            )
        elif age is not None and (not isinstance(age, dt.timedelta) or age < dt.timedelta(0)):
            yield (
                f"{where}[{state!r}] is {age!r}; it must be a timedelta of 0 or more, or None "
                f"(kept for ever)."
            )
