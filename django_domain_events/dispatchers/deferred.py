"""The deferred dispatcher: does nothing at commit, leaving deliveries owed."""

from __future__ import annotations

from collections.abc import Sequence

from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery


class DeferredDispatcher(Dispatcher):
    """Leaves deliveries pending in the outbox for the relay (or ``testing.drain()``) to run.

    Useful in tests that want to publish now and deliver later, and for receivers that should
    only ever run from a relay.
    """

    left_to_relay = True

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        return None
