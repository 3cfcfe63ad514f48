"""The relay: finds owed deliveries, claims them in batches, and hands them to their dispatchers.

A delivery is owed when nothing will run it unless someone acts: ``pending`` for longer than
``RELAY_GRACE`` (the process died between commit and dispatch, or the dispatcher failed),
``failed`` with its next attempt due, or ``dispatched`` longer than ``DISPATCH_TIMEOUT`` ago and
never settled (its task was lost). Every time is read from the database's clock.

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
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    close_old_connections,
    connections,
    router,
    transaction,
)
from django.db.models.functions import Now

from django_domain_events import signals
from django_domain_events.conf import settings
from django_domain_events.declaration.events import NamedEvent
from django_domain_events.declaration.registry import registry
from django_domain_events.delivery import ordering
from django_domain_events.delivery.loading import load_events
from django_domain_events.delivery.runner import Outcome, run_delivery
from django_domain_events.dispatchers import BUILTIN_DISPATCHERS, dispatchers
from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery
from django_domain_events.exceptions import DispatcherError
from django_domain_events.models import Delivery, DeliveryQuerySet, DeliveryState

logger = logging.getLogger("django_domain_events")

_COLUMNS = ("pk", "receiver", "dispatcher", "queue", "attempts", "event_id", "ordering_key")
_Row = tuple[uuid.UUID, str, str, str, int, uuid.UUID, str]


RELEASE_EVERY = 30.0
"""Seconds between a relay's looks for waiting deliveries that nothing holds up any more."""


@dataclass
class RelayTotals:
    """What a relay did: deliveries claimed, and what became of them.

    ``delivered``, ``failed`` and ``dead`` count receivers the relay ran itself (``"sync"`` and
    ``"deferred"`` deliveries); ``sent`` counts deliveries handed to another dispatcher, such as
    Celery; ``buried`` counts deliveries made dead at once because their dispatcher is not one
    this project declares; ``lost`` counts claims another relay took over before this one
    handed them over (it was paused past its lease).
    """

    batches: int = 0
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    sent: int = 0
    buried: int = 0
    lost: int = 0
    errors: int = 0
    """Batches that failed on a database error (the relay carries on with the next)."""

    def add(self, other: RelayTotals) -> None:
        """Add ``other``'s counts to these."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def __str__(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.as_dict().items())


def new_relay_id() -> str:
    """A relay id unique across hosts and restarts: host, process id and a random part."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def declared_dispatchers() -> frozenset[str]:
    """The dispatcher names a delivery row may name: the built-in ones, the project's default,
    and the dispatchers registered receivers declare.

    A row naming anything else is never imported: a dotted path stored in the database is data,
    and importing it would run code chosen by whoever could write that row.
    """
    names = set(BUILTIN_DISPATCHERS)
    names.add(settings.DISPATCHER)
    names.update(receiver.dispatcher for receiver in registry.all() if receiver.dispatcher)
    return frozenset(names)


@dataclass
class Relay:
    """Claims owed deliveries of one database in batches and dispatches them.

    ``run_batch()`` claims and hands over one batch; ``run_pass()`` repeats it until nothing is
    owed; ``run_forever()`` repeats passes, waiting ``interval`` seconds after a pass that found
    nothing, until ``stop()``. Arguments left as None come from the ``DOMAIN_EVENTS`` settings.
    """

    using: str | None = None
    batch_size: int | None = None
    grace: float | None = None
    lease: float | None = None
    dispatch_timeout: float | None = None
    relay_id: str = field(default_factory=new_relay_id)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _claimed_at: float = field(default=0.0, init=False, repr=False)
    _event_ids: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict, init=False, repr=False)
    _released_at: float = field(default=0.0, init=False, repr=False)

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
            | rows.dispatch_lost(self._dispatch_timeout())
            | rows.pending_past(self._grace())
        )

    def claim_batch(self) -> list[OwedDelivery]:
        """Claim up to ``batch_size`` owed deliveries: mark them dispatched, claimed by this
        relay until the lease ends. Return them."""
        limit = self._batch_size()
        rows = Delivery.objects.using(self.alias)
        kinds = (
            (rows.retry_due(), "next_attempt_at"),
            (rows.dispatch_lost(self._dispatch_timeout()), "dispatched_at"),
            (rows.pending_past(self._grace()), "created_at"),
        )
        skip_locked = self.skips_locked_rows
        with transaction.atomic(using=self.alias):
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

    def hand_over(self, claimed: Sequence[OwedDelivery]) -> RelayTotals:
        """Dispatch claimed deliveries, each through the dispatcher its row names.

        ``"sync"`` and ``"deferred"`` deliveries run here, one after another; the lease is
        renewed as they go, and a delivery whose claim another relay has taken is left to it.
        Other dispatchers get their deliveries in one call, after the claims are checked.
        """
        totals = RelayTotals()
        allowed = declared_dispatchers()
        groups: dict[str, list[OwedDelivery]] = {}
        for owed in claimed:
            groups.setdefault(owed.dispatcher, []).append(owed)
        for name, items in groups.items():
            if name not in allowed:
                totals.buried += self.bury(
                    items,
                    f"Its dispatcher {name!r} is neither a built-in dispatcher, "
                    f'DOMAIN_EVENTS["DISPATCHER"], nor one a registered receiver declares, and '
                    f"a dispatcher named by a stored row is never imported. Configure it, then "
                    f"retry the delivery (manage.py retry_deliveries).",
                )
                continue
            try:
                dispatcher = dispatchers[name]
            except DispatcherError:
                # A configuration error the system checks report; the claims lapse and the
                # deliveries are owed again after DISPATCH_TIMEOUT.
                logger.exception("Relay cannot build dispatcher %r; %d left", name, len(items))
                continue
            if dispatcher.runs_inline or dispatcher.left_to_relay:
                self._run_here(items, totals)
            else:
                self._send(dispatcher, items, totals)
        return totals

    def _run_here(self, items: Sequence[OwedDelivery], totals: RelayTotals) -> None:
        # Renewing costs a statement, so it is done once a third of the lease has gone by: a
        # relay that runs normally keeps its claims, one paused past its lease finds out.
        renew_every = self._lease().total_seconds() / 3
        renewed = self._claimed_at
        remaining = self._with_events(items)
        while remaining:
            if time.monotonic() - renewed > renew_every:
                kept = self.still_claimed(remaining)
                totals.lost += len(remaining) - len(kept)
                remaining = kept
                renewed = time.monotonic()
                if not remaining:
                    break
            owed = remaining.pop(0)
            outcome = run_delivery(owed)
            if outcome is Outcome.DELIVERED:
                totals.delivered += 1
            elif outcome is Outcome.FAILED:
                totals.failed += 1
            elif outcome is Outcome.DEAD:
                totals.dead += 1
            else:
                totals.skipped += 1

    def _with_events(self, items: Sequence[OwedDelivery]) -> list[OwedDelivery]:
        # Deliveries run here get their events loaded in one query for the batch, instead of
        # one query each in run_delivery(). One whose event cannot be decoded is left to
        # run_delivery(), which loads it again and records why it cannot be delivered.
        event_ids = self._event_ids
        wanted = {event_ids[owed.delivery_id] for owed in items if owed.delivery_id in event_ids}
        if not wanted:
            return list(items)
        loaded = load_events(self.alias, wanted)
        ready = []
        for owed in items:
            event_id = event_ids.get(owed.delivery_id)
            found = loaded.get(event_id) if event_id is not None else None
            ready.append(
                owed
                if found is None
                else replace(owed, event=found[0], envelope=found[1], headers=found[2])
            )
        return ready

    def _send(
        self, dispatcher: Dispatcher, items: Sequence[OwedDelivery], totals: RelayTotals
    ) -> None:
        kept = self.still_claimed(items)
        totals.lost += len(items) - len(kept)
        if not kept:
            return
        try:
            dispatcher.dispatch(kept)
        except Exception:
            # The contract says dispatch() does not raise; if it does, the claims lapse and the
            # deliveries are owed again after DISPATCH_TIMEOUT.
            logger.exception("Dispatcher %r failed on %d deliveries", dispatcher.name, len(kept))
            return
        totals.sent += len(kept)

    # Loops --------------------------------------------------------------------------------

    def run_batch(self) -> RelayTotals:
        """Claim one batch and hand it over."""
        claimed = self.claim_batch()
        totals = self.hand_over(claimed) if claimed else RelayTotals()
        totals.claimed = len(claimed)
        totals.batches = 1 if claimed else 0
        return totals

    def run_pass(
        self,
        *,
        on_batch: Callable[[RelayTotals], None] | None = None,
        max_batches: int | None = None,
        deadline: float | None = None,
    ) -> RelayTotals:
        """Run batches until one comes back short of ``batch_size`` (nothing more is owed), or
        ``stop()`` is called, or ``max_batches`` have run, or ``time.monotonic()`` passes
        ``deadline``. ``on_batch`` is called with each batch's totals. A database error ends
        the pass: it is logged, and counted in ``errors``."""
        totals = RelayTotals()
        self._release_stranded()
        while not self._stopping.is_set():
            try:
                batch = self.run_batch()
            except DatabaseError:
                logger.exception("Relay %s: a batch failed on a database error", self.relay_id)
                totals.errors += 1
                self._drop_connection()
                if on_batch is not None:
                    on_batch(RelayTotals(errors=1))
                break
            self._recycle_connections()
            totals.add(batch)
            if batch.claimed and on_batch is not None:
                on_batch(batch)
            if batch.claimed < self._batch_size():
                break
            if max_batches is not None and totals.batches >= max_batches:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        return totals

    def run_forever(
        self,
        *,
        interval: float | None = None,
        on_batch: Callable[[RelayTotals], None] | None = None,
    ) -> RelayTotals:
        """Run passes until ``stop()``, waiting ``interval`` seconds (``RELAY_INTERVAL``) after
        a pass that claimed nothing or failed. The batch being run when ``stop()`` is called is
        finished first."""
        totals = RelayTotals()
        while not self._stopping.is_set():
            found = self.run_pass(on_batch=on_batch)
            totals.add(found)
            if found.claimed == 0 or found.errors:
                wait = interval if interval is not None else settings.RELAY_INTERVAL
                self._stopping.wait(wait)
        return totals

    def _release_stranded(self) -> None:
        # Ordering's safety net, at most every RELEASE_EVERY seconds: see
        # ordering.release_stranded(). Released deliveries are pending, claimed by this pass.
        now = time.monotonic()
        if self._released_at and now - self._released_at < RELEASE_EVERY:
            return
        self._released_at = now
        try:
            released = ordering.release_stranded(self.alias)
        except DatabaseError:
            logger.exception("Relay %s: releasing waiting deliveries failed", self.relay_id)
            return
        if released:
            logger.warning(
                "Relay %s released %d waiting deliveries with nothing unsettled ahead of them",
                self.relay_id,
                released,
            )

    def _recycle_connections(self) -> None:
        # Between batches, as between requests: drop connections past CONN_MAX_AGE or broken.
        # Not inside a transaction (a test's): closing it there would end the test's.
        if not connections[self.alias].in_atomic_block:
            close_old_connections()

    def _drop_connection(self) -> None:
        # After a database error the connection may be dead (the server restarted, the network
        # dropped): close it so the next batch reconnects, without restarting the relay.
        connection = connections[self.alias]
        if not connection.in_atomic_block:
            connection.close()

    def stop(self) -> None:
        """Ask the loops to return once the batch in hand is handed over."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called."""
        return self._stopping.is_set()
