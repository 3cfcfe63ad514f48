"""The on-commit batch: the deliveries one transaction published, dispatched by one hook.

Per transaction, the deliveries are gathered in one ``Batch`` and a single ``on_commit`` hook
dispatches them all. Django forgets an ``on_commit`` hook registered inside a savepoint when that
savepoint rolls back, so a batch only takes events published under the same live savepoints as
its hook: then the hook and the rows it dispatches are rolled back together, never one without
the other. A savepoint that was released can no longer roll back alone, so after an inner
``atomic()`` block exits normally, the outer level keeps using the batch opened inside it.
After the commit, the hook also calls the runtime listeners of ``listeners.py``, if any.

On PostgreSQL, a batch that takes deliveries left to the relay (the ``"deferred"`` dispatcher)
sends one ``NOTIFY`` on ``RELAY_CHANNEL`` inside the transaction: the server delivers it to the
listening relays only when the transaction commits, drops it if the transaction or the
savepoint rolls back, and folds identical ones of one transaction into one.
"""

from __future__ import annotations

import logging
import sys
import time

from django.db.backends.base.base import BaseDatabaseWrapper

from django_domain_events import signals
from django_domain_events.conf import SettingSwitch, settings
from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.observability import debug_logging, metrics
from django_domain_events.publishing import listeners

logger = logging.getLogger("django_domain_events")

_BATCHES_ATTR = "_domain_events_batches"

wakes_relays = SettingSwitch(lambda: settings.RELAY_LISTEN)
"""Whether publishing notifies listening relays (``RELAY_LISTEN``), cached until it changes."""


class Batch:
    """Deliveries published under one set of live savepoints of one transaction."""

    __slots__ = (
        "alias",
        "batches",
        "envelopes",
        "hook",
        "owed",
        "ran",
        "relays_woken",
        "savepoints",
    )

    def __init__(self, alias: str, savepoints: frozenset[str], batches: list[Batch] | None) -> None:
        self.alias = alias
        self.savepoints = savepoints
        self.batches = batches
        self.owed: list[OwedDelivery] = []
        self.envelopes: list[tuple[DomainEvent | NamedEvent, Envelope]] = []
        self.ran = False
        """Set when the hook has run, that is when the transaction committed."""
        self.relays_woken = False
        """Set once this batch has sent its ``NOTIFY`` to the listening relays."""
        self.hook = self.run  # one bound method, so identity checks can find it

    def is_registered(self, connection: BaseDatabaseWrapper) -> bool:
        hook = self.hook
        return any(entry[1] is hook for entry in connection.run_on_commit)

    def relay_channel(
        self, connection: BaseDatabaseWrapper, owed: list[OwedDelivery]
    ) -> str | None:
        """The channel to ``NOTIFY`` with the rows of ``owed`` about to be written on
        ``connection``: on PostgreSQL, the first time this batch takes a delivery left to the
        relay; otherwise None."""
        if self.relays_woken or connection.vendor != "postgresql" or not wakes_relays():
            return None
        names = {item.dispatcher for item in owed}
        if not any(_left_to_relay(name) for name in names):
            return None
        self.relays_woken = True
        return settings.RELAY_CHANNEL

    def run(self) -> None:
        """The ``on_commit`` hook: announce the events, then dispatch their deliveries."""
        self.ran = True
        if self.batches is not None and self in self.batches:
            self.batches.remove(self)
        owed, self.owed = self.owed, []
        envelopes, self.envelopes = self.envelopes, []
        notify = listeners.notify if listeners.has_listeners() else None
        if metrics.enabled():
            metrics.published(envelopes)
        for event, envelope in envelopes:
            signals.send(
                signals.event_published,
                sender=type(event),
                event=event,
                envelope=envelope,
                using=self.alias,
            )
            if notify is not None:
                notify(event, envelope)
        by_dispatcher: dict[str, list[OwedDelivery]] = {}
        for item in owed:
            by_dispatcher.setdefault(item.dispatcher, []).append(item)
        debug = debug_logging.enabled()
        for name, items in by_dispatcher.items():
            started = time.perf_counter() if debug else 0.0
            try:
                dispatchers[name].dispatch(items)
            except Exception:
                # Never into the caller: the deliveries stay owed and the relay sends them.
                logger.exception(
                    "Dispatcher %r failed to dispatch %d deliveries; they stay owed",
                    name,
                    len(items),
                )
            if debug:
                debug_logging.dispatched(name, items, time.perf_counter() - started)


def _left_to_relay(name: str) -> bool:
    try:
        return dispatchers[name].left_to_relay
    except Exception:
        # An unknown name is check E003's to report; the dispatch at commit logs it.
        return False


def _in_test_case(connection: BaseDatabaseWrapper) -> bool:
    # Django's TestCase never commits; its captureOnCommitCallbacks() runs only the hooks
    # registered inside the block, so a batch whose hook was registered before the block (in
    # setUp, say) would take later events with it: under TestCase every publish gets its own
    # hook. Only a test process has TestCase loaded, and telling its transactions apart is the
    # testing module's business.
    if "django.test.testcases" not in sys.modules:
        return False
    from django_domain_events.testing import in_test_case

    return in_test_case(connection)


def batch_for(connection: BaseDatabaseWrapper, alias: str) -> Batch:
    live = frozenset(connection.savepoint_ids)
    if _in_test_case(connection):
        own = Batch(alias, live, None)
        connection.on_commit(own.hook, robust=True)
        return own
    batches: list[Batch] | None = getattr(connection, _BATCHES_ATTR, None)
    if batches is None:
        batches = []
        setattr(connection, _BATCHES_ATTR, batches)
    for batch in batches:
        # The batch's hook dies exactly when one of its savepoints that is still live rolls
        # back; it suits this publish when those are exactly the savepoints live now.
        if batch.savepoints & live == live and batch.is_registered(connection):
            return batch
    # Batches whose hooks Django dropped (their transaction or savepoint rolled back) go too.
    batches[:] = [batch for batch in batches if batch.is_registered(connection)]
    batch = Batch(alias, live, batches)
    batches.append(batch)
    connection.on_commit(batch.hook, robust=True)
    return batch
