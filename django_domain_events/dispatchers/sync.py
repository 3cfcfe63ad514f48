"""The synchronous dispatcher: runs receivers in the publishing process, right after commit."""

from __future__ import annotations

from collections.abc import Sequence

from django_domain_events.delivery.runner import run_delivery
from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery


class SyncDispatcher(Dispatcher):
    """Runs each delivery at once, each receiver in its own transaction with its delivery mark.

    A failing receiver never raises into the caller: its delivery records the error and is
    retried later.
    """

    runs_inline = True

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        for owed in deliveries:
            run_delivery(owed)
