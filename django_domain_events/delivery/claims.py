"""A relay's claims: which deliveries are owed, and taking a batch of them with a lease.

A delivery is owed when nothing will run it unless someone acts: ``pending`` for longer than
``RELAY_GRACE`` (the process died between commit and dispatch, or the dispatcher failed), or
``pending`` at all if its dispatcher leaves it to the relay (no dispatch at commit to race),
``failed`` with its next attempt due, ``scheduled`` with its due time reached, or
``dispatched`` longer than ``DISPATCH_TIMEOUT`` ago and never settled (its task was lost).
Every time is read from the database's clock.

A claim marks a batch ``dispatched`` with this relay's id and a lease (``claimed_until``) in one
transaction; on databases that have ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL,
MySQL/MariaDB), concurrent relays skip each other's rows and claim disjoint batches. Every later
write the relay makes is conditioned on the claim still being its own, so a relay that was
paused past its lease cannot touch what another relay claimed since.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    connections,
    router,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import Now

from django_domain_events import signals
from django_domain_events.conf import settings
from django_domain_events.declaration.events import NamedEvent
from django_domain_events.declaration.registry import registry
from django_domain_events.dispatchers import dispatcher_class
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.exceptions import DispatcherError
from django_domain_events.models import Delivery, DeliveryQuerySet, DeliveryState
from django_domain_events.statements import NO_FLUSH

logger = logging.getLogger("django_domain_events")

_COLUMNS = ("pk", "receiver", "dispatcher", "queue", "attempts", "event_id", "ordering_key")
_Row = tuple[uuid.UUID, str, str, str, int, uuid.UUID, str]


def new_relay_id() -> str:
    """A relay id unique across hosts and restarts: host, process id and a random part."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def relay_only_dispatchers() -> frozenset[str]:
    """The declared dispatcher names whose deliveries only a relay runs (``"deferred"``, and
    any with ``left_to_relay``): the relay takes them as soon as they commit."""
    names = {settings.DISPATCHER, *(receiver.dispatcher for receiver in registry.all())}
    found = {"deferred"}
    # The other built-in ones hand their deliveries over at commit (and "celery" is not
    # imported for nothing).
    for name in {name for name in names if name} - {"sync", "celery", "tasks", "deferred"}:
        try:
            if dispatcher_class(name).left_to_relay:
                found.add(name)
        except DispatcherError:
            continue  # check E003 reports it
    return frozenset(found)


@dataclass
class RelayClaims:
    """The claiming half of a ``Relay``: its settings, what is owed, and its claims on a batch."""

    using: str | None = None
    batch_size: int | None = None
    grace: float | None = None
    lease: float | None = None
    dispatch_timeout: float | None = None
    relay_id: str = field(default_factory=new_relay_id)
    _claimed_at: float = field(default=0.0, init=False, repr=False)
    _event_ids: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict, init=False, repr=False)
    _statement: tuple[tuple[Any, ...], str, list[Any]] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.using is None:
            self.using = router.db_for_write(Delivery) or DEFAULT_DB_ALIAS
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"Relay batch_size is {self.batch_size}; it must be at least 1.")

    @property
    def alias(self) -> str:
        """The database alias the relay works on."""
        assert self.using is not None
        return self.using

    # Settings are read at each use, so a long-running relay sees override_settings in tests.
    def _batch_size(self) -> int:
        return self.batch_size if self.batch_size is not None else settings.RELAY_BATCH_SIZE

    def _grace(self) -> dt.timedelta:
        seconds = self.grace if self.grace is not None else settings.RELAY_GRACE
        return dt.timedelta(seconds=seconds)

    def _lease(self) -> dt.timedelta:
        seconds = self.lease if self.lease is not None else settings.RELAY_LEASE
        return dt.timedelta(seconds=seconds)

    def _dispatch_timeout(self) -> dt.timedelta:
        seconds = (
            self.dispatch_timeout
            if self.dispatch_timeout is not None
            else settings.DISPATCH_TIMEOUT
        )
        return dt.timedelta(seconds=seconds)

    @property
    def skips_locked_rows(self) -> bool:
        """Whether the database has ``FOR UPDATE SKIP LOCKED``, so relays claim disjoint
        batches. Without it (SQLite), run one relay at a time."""
        return bool(connections[self.alias].features.has_select_for_update_skip_locked)

    # Claiming -----------------------------------------------------------------------------

    def owed(self) -> DeliveryQuerySet:
        """The deliveries this relay would claim now (in no particular order)."""
        rows = Delivery.objects.using(self.alias)
        return (
            rows.retry_due()
            | rows.scheduled_due()
            | rows.dispatch_lost(self._dispatch_timeout())
            | self._pending_owed(rows)
        )

    def _pending_owed(self, rows: DeliveryQuerySet) -> DeliveryQuerySet:
        relay_only = rows.filter(
            state=DeliveryState.PENDING, dispatcher__in=relay_only_dispatchers()
        )
        return rows.pending_past(self._grace()) | relay_only

    def claim_batch(self) -> list[OwedDelivery]:
        """Claim up to ``batch_size`` owed deliveries: mark them dispatched, claimed by this
        relay until the lease ends. Return them."""
        limit = self._batch_size()
        skip_locked = self.skips_locked_rows
        if skip_locked and connections[self.alias].vendor == "postgresql":
            return self._claim_in_one_statement(limit)
        kinds = self._kinds()
        with transaction.atomic(using=self.alias):
            if connections[self.alias].vendor == "sqlite":
                _take_the_write_lock(self.alias)
            found: list[_Row] = []
            for queryset, order in kinds:
                if len(found) >= limit:
                    break
                candidates = queryset.order_by(order)
                if skip_locked:
                    candidates = candidates.select_for_update(skip_locked=True)
                found.extend(candidates.values_list(*_COLUMNS)[: limit - len(found)])
            # Without row locks the UPDATE checks again that each row is still owed.
            return self._take(found, still=None if skip_locked else self.owed())

    def _kinds(self) -> tuple[tuple[DeliveryQuerySet, str], ...]:
        # What is owed, kind by kind, each with the column its oldest come first by.
        rows = Delivery.objects.using(self.alias)
        return (
            (rows.retry_due(), "next_attempt_at"),
            (rows.scheduled_due(), "next_attempt_at"),
            (rows.dispatch_lost(self._dispatch_timeout()), "dispatched_at"),
            (self._pending_owed(rows), "created_at"),
        )

    def _claim_in_one_statement(self, limit: int) -> list[OwedDelivery]:
        # PostgreSQL: the kinds' locking SELECTs and the claiming UPDATE in one statement, in
        # autocommit. A relay woken for one delivery otherwise made seven round trips (BEGIN,
        # four SELECTs, the UPDATE, COMMIT) before it could run it. The WITH query is read only
        # as far as the UPDATE needs, so a kind is not even looked at once the batch is full.
        connection = connections[self.alias]
        # Built once for the settings it depends on: building it took as long as running it.
        wanted = (
            limit,
            self._grace(),
            self._dispatch_timeout(),
            self._lease(),
            relay_only_dispatchers(),
            connection.in_atomic_block,
        )
        if self._statement is None or self._statement[0] != wanted:
            self._statement = (wanted, *self._claim_statement(connection, limit))
        _, statement, params = self._statement
        self._claimed_at = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            returned = cursor.fetchall()
        # In the order the kinds were tried, each oldest first, as the batch was chosen.
        returned.sort(key=lambda row: (row[7], row[8]))
        found: list[_Row] = [tuple(row[:7]) for row in returned]
        self._event_ids = {row[0]: row[5] for row in found}
        return [
            OwedDelivery(
                pk, receiver, dispatcher, queue, self.alias, attempts=attempts, ordering_key=key
            )
            for pk, receiver, dispatcher, queue, attempts, _, key in found
        ]

    def _claim_statement(
        self, connection: BaseDatabaseWrapper, limit: int
    ) -> tuple[str, list[Any]]:
        quote = connection.ops.quote_name
        branches, params = [], []
        for rank, (queryset, order) in enumerate(self._kinds()):
            candidates = queryset.order_by(order).values_list("pk", order)[:limit]
            sql, branch_params = candidates.query.get_compiler(using=self.alias).as_sql()
            # Locked and skipped before the LIMIT, as select_for_update(skip_locked=True) does.
            branches.append(
                f"(SELECT id, {rank} AS kind, due FROM ({sql} FOR UPDATE SKIP LOCKED) "
                f"AS kind{rank} (id, due))"
            )
            params += branch_params
        table = quote(Delivery._meta.db_table)
        # A claim lost in a crash leaves its deliveries owed: it need not wait for the WAL flush,
        # which was most of a woken pass. Not so inside a caller's transaction.
        durability = "" if connection.in_atomic_block else f", {NO_FLUSH}"
        statement = (
            f"WITH owed AS ({' UNION ALL '.join(branches)}) "
            f"UPDATE {table} AS delivery SET state = %s, dispatched_at = STATEMENT_TIMESTAMP(), "
            f"claimed_by = %s, claimed_until = STATEMENT_TIMESTAMP() + %s "
            f"FROM (SELECT id, kind, due FROM owed LIMIT %s) AS taken{durability} "
            f"WHERE delivery.id = taken.id "
            f"RETURNING delivery.id, delivery.receiver, delivery.dispatcher, delivery.queue, "
            f"delivery.attempts, delivery.event_id, delivery.ordering_key, taken.kind, taken.due"
        )
        params += [DeliveryState.DISPATCHED, self.relay_id, self._lease(), limit]
        return statement, params

    def claim(
        self, ids: Sequence[uuid.UUID], *, states: Sequence[str], **changes: Any
    ) -> list[OwedDelivery]:
        """Claim the deliveries ``ids`` that are in one of ``states`` now, applying
        ``changes`` to them too; return those claimed. For deliveries a person chose to run
        again (``replay_events``, ``retry_deliveries``), which then go through
        ``hand_over()`` like any claim."""
        if not ids:
            return []
        rows = Delivery.objects.using(self.alias).filter(pk__in=ids, state__in=states)
        skip_locked = self.skips_locked_rows
        with transaction.atomic(using=self.alias):
            candidates = rows.order_by("created_at", "id")
            if skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            found = list(candidates.values_list(*_COLUMNS))
            return self._take(found, still=None if skip_locked else rows, changes=changes)

    def _take(
        self,
        found: list[_Row],
        *,
        still: DeliveryQuerySet | None,
        changes: dict[str, Any] | None = None,
    ) -> list[OwedDelivery]:
        # Called in the claim's transaction, with ``found`` locked unless ``still`` is given:
        # then the UPDATE keeps only rows ``still`` matches, and reads back which it took.
        if not found:
            return []
        # The lease runs from here, by the database's clock; this host's monotonic clock only
        # measures how much of it has gone by, to know when to renew it.
        self._claimed_at = time.monotonic()
        ids = [row[0] for row in found]
        claim = Delivery.objects.using(self.alias).filter(pk__in=ids)
        if still is not None:
            claim = claim & still
        changes = changes or {}
        claim.update(
            state=DeliveryState.DISPATCHED,
            dispatched_at=Now(),
            claimed_by=self.relay_id,
            claimed_until=Now() + self._lease(),
            **changes,
        )
        if still is not None:
            mine = set(
                Delivery.objects.using(self.alias)
                .claimed_by_relay(self.relay_id)
                .filter(pk__in=ids)
                .values_list("pk", flat=True)
            )
            found = [row for row in found if row[0] in mine]
        attempts_now = changes.get("attempts")
        self._event_ids = {row[0]: row[5] for row in found}
        return [
            OwedDelivery(
                pk,
                receiver,
                dispatcher,
                queue,
                self.alias,
                attempts=attempts if attempts_now is None else int(attempts_now),
                ordering_key=key,
            )
            for pk, receiver, dispatcher, queue, attempts, _, key in found
        ]

    def still_claimed(self, deliveries: Sequence[OwedDelivery]) -> list[OwedDelivery]:
        """Renew this relay's lease on those of ``deliveries`` it still holds, and return them.

        A delivery another relay claimed since (this one's lease ended: it was paused, or
        slow), or that someone is running right now (its row is locked), is left out.
        """
        if not deliveries:
            return []
        ids = [owed.delivery_id for owed in deliveries]
        rows = Delivery.objects.using(self.alias).claimed_by_relay(self.relay_id)
        with transaction.atomic(using=self.alias):
            held = rows.filter(pk__in=ids)
            if self.skips_locked_rows:
                held = held.select_for_update(skip_locked=True)
            mine = set(held.values_list("pk", flat=True))
            if mine:
                rows.filter(pk__in=mine).update(claimed_until=Now() + self._lease())
        return [owed for owed in deliveries if owed.delivery_id in mine]

    def bury(self, deliveries: Sequence[OwedDelivery], reason: str) -> int:
        """Make claimed deliveries dead at once with ``reason``; return how many it did."""
        if not deliveries:
            return 0
        ids = [owed.delivery_id for owed in deliveries]
        buried = (
            Delivery.objects.using(self.alias)
            .claimed_by_relay(self.relay_id)
            .filter(pk__in=ids)
            .update(
                state=DeliveryState.DEAD,
                last_error=reason[:10_000],
                traceback="",
                next_attempt_at=None,
                claimed_by="",
                claimed_until=None,
            )
        )
        for owed in deliveries:
            logger.error("Delivery %s to %s is dead: %s", owed.delivery_id, owed.receiver, reason)
            signals.send(
                signals.delivery_dead,
                sender=NamedEvent,
                event=None,
                envelope=None,
                receiver=registry.get(owed.receiver),
                using=self.alias,
                exception=None,
                reason=reason,
            )
        return buried

    # Handing over -------------------------------------------------------------------------


def _take_the_write_lock(alias: str) -> None:
    # SQLite: a transaction that reads, then writes, fails at once with "database is locked"
    # when another connection wrote in between (its snapshot is stale; waiting cannot help).
    # Writing first takes the write lock at the start, waiting for it up to the busy timeout,
    # as OPTIONS["transaction_mode"] = "IMMEDIATE" does for every transaction.
    table = connections[alias].ops.quote_name(Delivery._meta.db_table)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET id = id WHERE 0")
