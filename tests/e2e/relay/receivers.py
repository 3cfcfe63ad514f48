"""Receivers of the relay's process tests. ``register()`` adds them to the registry: the test
processes call it from their app's ``ready()``, the tests inside their isolated registry."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_domain_events import Envelope, NamedEvent, receiver
from tests.testapp.models import Effect

RECORDED = "relay_tests.recorded"
"""Events of this type reach ``record`` and ``poison``."""
HELD = "relay_tests.held"
HUNG = "relay_tests.hung"
"""Events of this type reach ``record`` and ``hang``."""
IGNORED = "relay_tests.ignored"
"""Events of this type reach ``ignore``, which does nothing (for measuring the relay)."""

RECORD = "relay_tests.record"
POISON = "relay_tests.poison"
HOLD = "relay_tests.hold"
IGNORE = "relay_tests.ignore"
HANG = "relay_tests.hang"
POISON_ATTEMPTS = 3
HANG_TIMEOUT = 1
HANG_ATTEMPTS = 2


def record(event: NamedEvent, envelope: Envelope) -> None:
    """One Effect per run that commits, naming the process that ran it."""
    Effect.objects.create(
        receiver=f"{RECORD}@{os.getpid()}", event_id=envelope.event_id, attempt=envelope.attempt
    )


def poison(event: NamedEvent) -> None:
    """Fails every time, for events that ask for it."""
    if event.payload.get("poison"):
        raise RuntimeError("poisoned payload")


def hold(event: NamedEvent, envelope: Envelope) -> None:
    """Writes the ``started`` file, waits while the ``hold`` file exists (at most 30 s), then
    records its effect."""
    Path(event.payload["started"]).write_text(str(os.getpid()))
    deadline = time.monotonic() + 30
    while Path(event.payload["hold"]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    record(event, envelope)


def hang(event: NamedEvent, envelope: Envelope) -> None:
    """Records its effect (rolled back when it times out), then never returns."""
    record(event, envelope)
    while True:
        time.sleep(3600)


def ignore(event: NamedEvent) -> None:
    """Does nothing."""


def register() -> None:
    """Register the receivers above."""
    receiver(RECORDED, name=RECORD)(record)
    receiver(RECORDED, name=POISON, max_attempts=POISON_ATTEMPTS)(poison)
    receiver(HELD, name=HOLD)(hold)
    receiver(IGNORED, name=IGNORE)(ignore)
    receiver(HUNG, name=f"{RECORD}.beside_hang")(record)
    receiver(HUNG, name=HANG, timeout=HANG_TIMEOUT, max_attempts=HANG_ATTEMPTS)(hang)
