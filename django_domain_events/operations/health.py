"""The outbox's health: deliveries by state and receiver, what is owed and for how long.

``outbox_status()`` reads it (a handful of aggregate queries, owed deliveries found through the
relay's partial indexes); ``events_status`` prints it and exits non-zero when it is unhealthy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, router
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max
from django.db.models.functions import Now

from django_domain_events.conf import settings
from django_domain_events.delivery.ordering import blocked_lines
from django_domain_events.models import Delivery, DeliveryState

STATES = tuple(state.value for state in DeliveryState)

BLOCKED_LISTED = 20
"""How many blocked ordering keys a status lists (it counts them all)."""


@dataclass(frozen=True)
class BlockedKey:
    """An ordering key held up, for one ordered receiver, by a dead delivery."""

    receiver: str
    ordering_key: str
    dead: int
    since: dt.datetime | None
    """When the oldest of its dead deliveries last ran."""


@dataclass(frozen=True)
class OutboxStatus:
    """A snapshot of the outbox's deliveries.

    ``owed`` counts deliveries a relay would dispatch now; ``oldest_owed_seconds`` is how long
    the one waiting longest has waited: since it was written (pending), since its retry fell due
    (failed), or since it was dispatched (dispatched, never settled). ``problems`` says what is
    over its threshold; empty means healthy.
    """

    by_state: dict[str, int]
    owed: int
    oldest_owed_seconds: float | None
    by_receiver: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    blocked_keys: int = 0
    """Lines (receiver, ordering key) held up by a dead delivery until a person acts."""
    blocked: tuple[BlockedKey, ...] = ()
    """The first ``BLOCKED_LISTED`` of them, longest blocked first."""
    undefined_states: dict[str, int] = field(default_factory=dict)
    """Deliveries in a state ``DeliveryState`` does not define (rows changed by hand, where the
    database has no check constraint), by state: nothing will ever run or settle them."""

    @property
    def dead(self) -> int:
        """Dead deliveries."""
        return self.by_state.get(DeliveryState.DEAD, 0)

    @property
    def healthy(self) -> bool:
        """Whether no threshold is exceeded."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The status as plain JSON-ready data."""
        return {
            "healthy": self.healthy,
            "problems": list(self.problems),
            "by_state": self.by_state,
            "owed": self.owed,
            "oldest_owed_seconds": self.oldest_owed_seconds,
            "dead": self.dead,
            "by_receiver": self.by_receiver,
            "blocked_keys": self.blocked_keys,
            "undefined_states": self.undefined_states,
            "blocked": [
                {
                    "receiver": line.receiver,
                    "ordering_key": line.ordering_key,
                    "dead": line.dead,
                    "since": line.since.isoformat() if line.since else None,
                }
                for line in self.blocked
            ],
        }


def outbox_status(
    *,
    using: str | None = None,
    max_owed_age: float | None = None,
    max_dead: int | None = None,
    max_blocked_keys: int | None = None,
) -> OutboxStatus:
    """Read the outbox's status on ``using``, judged against ``max_owed_age`` seconds,
    ``max_dead`` dead deliveries and ``max_blocked_keys`` blocked ordering keys (None:
    ``STATUS_MAX_OWED_AGE``, ``STATUS_MAX_DEAD`` and ``STATUS_MAX_BLOCKED_KEYS``)."""
    alias = using or router.db_for_write(Delivery) or DEFAULT_DB_ALIAS
    rows = Delivery.objects.using(alias)
    by_state = dict.fromkeys(STATES, 0)
    undefined: dict[str, int] = {}
    for state, count in rows.order_by().values_list("state").annotate(n=Count("pk")):
        (by_state if state in by_state else undefined)[state] = count
    by_receiver: dict[str, dict[str, int]] = {}
    # Delivered deliveries are most of the table and say nothing about health.
    unsettled = rows.exclude(state=DeliveryState.DELIVERED).order_by()
    for receiver, state, count in unsettled.values_list("receiver", "state").annotate(
        n=Count("pk")
    ):
        by_receiver.setdefault(receiver, dict.fromkeys(STATES, 0))[state] = count
    grace = dt.timedelta(seconds=settings.RELAY_GRACE)
    timeout = dt.timedelta(seconds=settings.DISPATCH_TIMEOUT)
    owed = 0
    oldest: dt.timedelta | None = None
    for queryset, since in (
        (rows.pending_past(grace), "created_at"),
        (rows.retry_due(), "next_attempt_at"),
        (rows.scheduled_due(), "next_attempt_at"),
        (rows.dispatch_lost(timeout), "dispatched_at"),
    ):
        found = queryset.order_by().aggregate(
            n=Count("pk"),
            age=Max(ExpressionWrapper(Now() - F(since), output_field=DurationField())),
        )
        owed += found["n"]
        age = found["age"]
        if age is not None and (oldest is None or age > oldest):
            oldest = age
    oldest_seconds = round(oldest.total_seconds(), 3) if oldest is not None else None
    limit_age = settings.STATUS_MAX_OWED_AGE if max_owed_age is None else max_owed_age
    limit_dead = settings.STATUS_MAX_DEAD if max_dead is None else max_dead
    problems = []
    if oldest_seconds is not None and oldest_seconds > limit_age:
        problems.append(
            f"a delivery has been owed for {oldest_seconds:.0f} s, more than {limit_age:g} s: "
            f"is a relay running?"
        )
    if undefined:
        listed = ", ".join(f"{count} {state!r}" for state, count in sorted(undefined.items()))
        problems.append(
            f"deliveries in a state the outbox does not define ({listed}): nothing runs or "
            f"settles them; set each to 'failed' to retry it, or delete it"
        )
    dead = by_state[DeliveryState.DEAD]
    if limit_dead is not None and dead > limit_dead:
        problems.append(f"{dead} dead deliveries, more than {limit_dead}")
    blocked_keys, blocked = 0, tuple[BlockedKey, ...]()
    if dead:
        lines = blocked_lines(alias)
        blocked_keys = lines.count()
        blocked = tuple(BlockedKey(**line) for line in lines[:BLOCKED_LISTED])
    limit_blocked = (
        settings.STATUS_MAX_BLOCKED_KEYS if max_blocked_keys is None else max_blocked_keys
    )
    if limit_blocked is not None and blocked_keys > limit_blocked:
        problems.append(
            f"{blocked_keys} ordering keys blocked by a dead delivery, more than "
            f"{limit_blocked}: retry it (retry_deliveries --state dead --receiver ...) once "
            f"its cause is fixed"
        )
    return OutboxStatus(
        by_state=by_state,
        owed=owed,
        oldest_owed_seconds=oldest_seconds,
        by_receiver=dict(sorted(by_receiver.items())),
        problems=tuple(problems),
        blocked_keys=blocked_keys,
        blocked=blocked,
        undefined_states=undefined,
    )
