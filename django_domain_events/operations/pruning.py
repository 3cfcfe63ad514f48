"""Deleting settled events past their retention, in batches, while relays and workers run.

An event is pruned only when every one of its deliveries is settled and past its state's
retention (``retention``), or, given ``older_than``, settled (delivered, or dead when dead
letters are included) since before then. Each batch locks its events (skipping any another
transaction holds), checks that again under the lock, and deletes them with their deliveries
and those deliveries' attempt history. A delivery written for an event meanwhile (a replay)
waits for that lock and then fails on its foreign key instead of vanishing. Two prunes at once
lock disjoint events, so relays that all prune on their schedule do no harm.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, router, transaction
from django.db.models import Q

from django_domain_events.delivery.ordering import forget_idle_keys
from django_domain_events.models import Delivery, DeliveryAttempt, OutboxEvent
from django_domain_events.operations import retention

logger = logging.getLogger("django_domain_events")

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
    attempts: int = 0
    """Rows of attempt history deleted with their deliveries."""
    complete: bool = True
    """False when it stopped at its ``deadline`` with more left to prune."""

    def add(self, batch: PruneResult) -> None:
        """Add ``batch``'s counts to these."""
        self.events += batch.events
        self.deliveries += batch.deliveries
        self.attempts += batch.attempts
        self.batches += batch.batches


def prunable_conditions(older_than: dt.timedelta | None, *, include_dead: bool) -> list[Q]:
    """The conditions on ``OutboxEvent`` rows that may be pruned, by the database clock: one
    per group of event types sharing a retention, or one for every type with ``older_than``."""
    if older_than is not None:
        found = retention.past_retention(retention.override(older_than, include_dead=include_dead))
        return [] if found is None else [found]
    conditions = []
    for group in retention.retention_groups():
        kept = retention.with_dead_included(group.retention) if include_dead else group.retention
        past = retention.past_retention(kept)
        if past is not None:
            conditions.append(group.types_condition() & past)
    return conditions


def prune_events(
    older_than: dt.timedelta | None = None,
    *,
    using: str | None = None,
    include_dead: bool = False,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
    on_batch: Callable[[PruneResult], None] | None = None,
    deadline: float | None = None,
) -> PruneResult:
    """Delete the events past their retention (``DOMAIN_EVENTS["RETENTION"]`` and the event
    classes' ``retention``), with their deliveries and attempt history, ``batch_size`` events
    per transaction. ``older_than`` replaces every retention: events whose deliveries are all
    delivered (or dead, with ``include_dead``) since before then. Without it,
    ``include_dead`` prunes dead letters kept for ever after the delivered ones' retention.
    With ``dry_run``, count them instead. Once ``time.monotonic()`` passes ``deadline`` it
    stops after the batch in hand (``complete`` is then False)."""
    alias = using or router.db_for_write(OutboxEvent) or DEFAULT_DB_ALIAS
    conditions = prunable_conditions(older_than, include_dead=include_dead)
    total = PruneResult()
    for condition in conditions:
        if dry_run:
            total.add(_count(alias, condition))
            continue
        if not _prune_matching(alias, condition, batch_size, on_batch, deadline, total):
            total.complete = False
            return total
    if not dry_run:
        total.keys = forget_idle_keys(alias, batch_size)
    return total


def _count(alias: str, condition: Q) -> PruneResult:
    matching = OutboxEvent.objects.using(alias).filter(condition)
    return PruneResult(
        events=matching.count(),
        deliveries=Delivery.objects.using(alias).filter(event__in=matching).count(),
        attempts=DeliveryAttempt.objects.using(alias).filter(delivery__event__in=matching).count(),
    )


def _prune_matching(
    alias: str,
    condition: Q,
    batch_size: int,
    on_batch: Callable[[PruneResult], None] | None,
    deadline: float | None,
    total: PruneResult,
) -> bool:
    """Prune the events matching ``condition`` batch by batch; False if ``deadline`` came
    first."""
    skip_locked = connections[alias].features.has_select_for_update_skip_locked
    while True:
        batch = _prune_batch_retrying(alias, condition, batch_size, skip_locked)
        if batch is None:
            return True
        total.add(batch)
        if on_batch is not None:
            on_batch(batch)
        if deadline is not None and time.monotonic() >= deadline:
            return False


DEADLOCK_RETRIES = 5
"""Times a batch InnoDB chose as a deadlock's victim is tried again before the error is
raised."""

_INNODB_DEADLOCK = 1213


def _prune_batch_retrying(
    alias: str, condition: Q, batch_size: int, skip_locked: bool
) -> PruneResult | None:
    # Two prunes lock disjoint events, but InnoDB's DELETE also waits for the row just past
    # each range it reads (no gap locks under READ COMMITTED, but a lock on that row all the
    # same): with ids interleaved, two prunes can deadlock. InnoDB then rolls one back whole,
    # and that batch is simply done again; not inside a caller's transaction, which InnoDB
    # rolled back with it.
    retries = 1 if connections[alias].in_atomic_block else DEADLOCK_RETRIES
    for attempt in range(1, retries + 1):
        try:
            return _prune_batch(alias, condition, batch_size, skip_locked)
        except OperationalError as error:
            if attempt == retries or not _is_deadlock(alias, error):
                raise
            logger.info("A prune batch was a deadlock's victim; trying it again (%d)", attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _is_deadlock(alias: str, error: OperationalError) -> bool:
    return connections[alias].vendor == "mysql" and error.args[:1] == (_INNODB_DEADLOCK,)


def _prune_batch(
    alias: str, condition: Q, batch_size: int, skip_locked: bool
) -> PruneResult | None:
    """Delete one batch of the events matching ``condition`` with their deliveries and
    attempts, in one transaction; None when none is left."""
    events = OutboxEvent.objects.using(alias)
    with transaction.atomic(using=alias):
        candidates = events.filter(condition).order_by("occurred_at")
        if skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return None
        # Checked again now that the rows are locked: a statement sees every delivery
        # committed before it started, such as a retry that was waiting for the lock.
        ids = list(events.filter(condition, pk__in=ids).values_list("pk", flat=True))
        # Three DELETEs, children first. Django's collector would first SELECT the ids of
        # the deliveries and events (every table here has rows pointing at it), which made
        # pruning take twice as long; the rows they would cascade to are deleted already. A
        # table added later that points at these fails the DELETE on its foreign key.
        attempts, _ = (
            DeliveryAttempt.objects.using(alias).filter(delivery__event_id__in=ids).delete()
        )
        deliveries = Delivery.objects.using(alias).filter(event_id__in=ids)._raw_delete(alias)
        deleted = events.filter(pk__in=ids)._raw_delete(alias)
    return PruneResult(events=deleted, deliveries=deliveries, attempts=attempts, batches=1)
