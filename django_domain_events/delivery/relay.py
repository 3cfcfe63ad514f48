"""The relay: claims owed deliveries in batches (``claims.py``) and hands them to their
dispatchers, running the synchronous and deferred ones itself. On PostgreSQL it waits between
passes on a ``LISTEN`` (``wakeups.py``), so a publish that leaves it deliveries wakes it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from django.db import (
    DatabaseError,
    close_old_connections,
    connections,
)

from django_domain_events.conf import settings
from django_domain_events.declaration.registry import registry
from django_domain_events.delivery import ordering
from django_domain_events.delivery.claims import RelayClaims
from django_domain_events.delivery.loading import load_events, receives
from django_domain_events.delivery.runner import Outcome, run_delivery
from django_domain_events.delivery.shared_commits import can_share_commit, run_together
from django_domain_events.delivery.wakeups import RelayWakeups, Wake, cannot_listen
from django_domain_events.dispatchers import BUILTIN_DISPATCHERS, dispatchers
from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery
from django_domain_events.exceptions import DispatcherError
from django_domain_events.observability import metrics

logger = logging.getLogger("django_domain_events")

RELEASE_EVERY = 30.0
"""Seconds between a relay's looks for waiting deliveries that nothing holds up any more."""


@dataclass
class RelayTotals:
    """What a relay did: deliveries claimed, and what became of them.

    ``delivered``, ``failed`` and ``dead`` count receivers the relay ran itself (``"sync"`` and
    ``"deferred"`` deliveries), ``scheduled`` those whose receiver said ``NotYet``; ``sent``
    counts deliveries handed to another dispatcher, such as Celery; ``buried`` counts deliveries
    made dead at once because their dispatcher is not one this project declares; ``lost``
    counts claims another relay took over before this one handed them over (it was paused past
    its lease).
    """

    batches: int = 0
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    scheduled: int = 0
    sent: int = 0
    buried: int = 0
    lost: int = 0
    errors: int = 0
    """Batches that failed on a database error (the relay carries on with the next)."""

    def count(self, outcome: Outcome) -> None:
        """Count one delivery run here by its outcome (each outcome's value names its count)."""
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def add(self, other: RelayTotals) -> None:
        """Add ``other``'s counts to these."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def __str__(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.as_dict().items())


def _shared_commit_group(remaining: Sequence[OwedDelivery]) -> list[OwedDelivery]:
    # The deliveries at the head of the line that may share one commit (see shared_commits),
    # at most SHARED_COMMIT_SIZE; none if the first may not, or if only one could.
    group = []
    for owed in remaining[: settings.SHARED_COMMIT_SIZE]:
        if not can_share_commit(owed):
            break
        group.append(owed)
    return group if len(group) > 1 else []


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
class Relay(RelayClaims):
    """Claims owed deliveries of one database in batches and dispatches them.

    ``run_batch()`` claims and hands over one batch; ``run_pass()`` repeats it until nothing is
    owed; ``run_forever()`` repeats passes, waiting ``interval`` seconds after a pass that found
    nothing, until ``stop()``. Arguments left as None come from the ``DOMAIN_EVENTS`` settings.
    """

    between_passes: Callable[[], object] | None = None
    """Called by ``run_forever()`` after each pass, such as ``relay_events``' pruning."""
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _released_at: float = field(default=0.0, init=False, repr=False)
    _wakeups: RelayWakeups | None = field(default=None, init=False, repr=False)

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
            group = _shared_commit_group(remaining)
            if group:
                del remaining[: len(group)]
                outcomes = run_together(group)
                if outcomes is None:  # rolled back: each runs on its own
                    outcomes = [run_delivery(owed) for owed in group]
            else:
                outcomes = [run_delivery(remaining.pop(0))]
            for outcome in outcomes:
                totals.count(outcome)

    def _with_events(self, items: Sequence[OwedDelivery]) -> list[OwedDelivery]:
        # Deliveries run here get their events loaded in one query for the batch, instead of
        # one query each in run_delivery(). One whose event cannot be decoded, or is not of
        # its receiver's type, is left to run_delivery(), which loads it again and records
        # why it cannot be delivered.
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
                if found is None or not receives(owed.receiver, found[1].event_type)
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
        listen: bool | None = None,
        on_wait: Callable[[float, bool], None] | None = None,
        on_wake: Callable[[Wake], None] | None = None,
    ) -> RelayTotals:
        """Run passes until ``stop()``, waiting ``interval`` seconds (``RELAY_INTERVAL``) after
        a pass that claimed nothing or failed. The batch being run when ``stop()`` is called is
        finished first.

        With ``listen`` (``RELAY_LISTEN`` when None) on PostgreSQL, a ``NOTIFY`` on
        ``RELAY_CHANNEL`` ends the wait at once; the interval remains the safety net.
        ``on_wait`` is called with the seconds and whether it listens before each wait,
        ``on_wake`` with what ended it."""
        totals = RelayTotals()
        wakeups = (
            self.start_listening() if listen or (listen is None and settings.RELAY_LISTEN) else None
        )
        try:
            while not self._stopping.is_set():
                found = self.run_pass(on_batch=on_batch)
                totals.add(found)
                if self.between_passes is not None and not self._stopping.is_set():
                    self.between_passes()
                if found.claimed == 0 or found.errors:
                    wait = interval if interval is not None else settings.RELAY_INTERVAL
                    if on_wait is not None:
                        on_wait(wait, wakeups is not None and wakeups.listening)
                    if wakeups is None:
                        woke = Wake.STOPPED if self._stopping.wait(wait) else Wake.POLL
                    else:
                        woke = wakeups.wait(wait)
                    if woke is not Wake.STOPPED and metrics.enabled():
                        metrics.relay_woken(woke.value)
                    if on_wake is not None:
                        on_wake(woke)
        finally:
            self._wakeups = None
            if wakeups is not None:
                wakeups.close()
        return totals

    def start_listening(self) -> RelayWakeups | None:
        """Open the connection that listens for notifications, before the first pass so that
        nothing committed after it goes unheard; None (and a log line) where it cannot."""
        reason = cannot_listen(self.alias)
        if reason is not None:
            logger.info("Relay %s polls without listening: %s", self.relay_id, reason)
            return None
        wakeups = RelayWakeups(self.alias, settings.RELAY_CHANNEL)
        self._wakeups = wakeups
        if wakeups.connect():
            logger.info("Relay %s listening on channel %r", self.relay_id, settings.RELAY_CHANNEL)
        return wakeups

    @property
    def listening(self) -> bool:
        """Whether ``run_forever()`` is listening for notifications right now."""
        return self._wakeups is not None and self._wakeups.listening

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
        wakeups = self._wakeups
        if wakeups is not None:
            wakeups.interrupt()

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called."""
        return self._stopping.is_set()
