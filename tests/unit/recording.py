"""A dispatcher that keeps what it is given, as a queue-based dispatcher would send it, for
tests that look at what was handed over. ``tests/unit/conftest.py`` empties it before each
test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from django_domain_events import Dispatcher, OwedDelivery

RECORDING = "tests.unit.recording.RecordingDispatcher"
"""Its dotted path, for ``dispatcher=`` and ``DOMAIN_EVENTS["DISPATCHER"]``."""


class RecordingDispatcher(Dispatcher):
    """Keeps the deliveries of each ``dispatch()`` call in ``calls``."""

    calls: ClassVar[list[list[OwedDelivery]]] = []

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        RecordingDispatcher.calls.append(list(deliveries))
