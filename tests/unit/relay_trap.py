"""A module no test imports: the relay must never import it because a delivery row names it."""

from __future__ import annotations

from collections.abc import Sequence

from django_domain_events import Dispatcher, OwedDelivery

IMPORTED = True


class TrapDispatcher(Dispatcher):
    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        raise AssertionError("a dispatcher named only by a row was imported and used")
