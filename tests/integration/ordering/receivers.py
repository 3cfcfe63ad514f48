"""Receivers of the ordering tests. ``register()`` adds them to the registry: the worker
processes call it from their app's ``ready()``, the tests inside their isolated registry.

Both record one ``Effect`` per run that commits, named ``<receiver>:<key>:<n>``, in the
receiver's transaction, so the order of the ``Effect`` rows of one key is the order in which
the runs committed.
"""

from __future__ import annotations

from pathlib import Path

from django_domain_events import Envelope, GiveUp, NamedEvent, receiver
from tests.testapp.models import Effect

STEPPED = "ordering_tests.stepped"
"""Payload: ``key``, ``n`` (the event's place in its key's line), and optionally
``fail_first`` (the first attempt fails) and ``give_up_while`` (a path: the ordered receiver
gives up while that file exists)."""

ORDERED = "ordering_tests.ordered"
UNORDERED = "ordering_tests.unordered"


def effect_name(name: str, key: str, n: int) -> str:
    """The ``Effect.receiver`` a run of receiver ``name`` records for event ``n`` of ``key``."""
    return f"{name}:{key}:{n}"


def record(name: str, event: NamedEvent, envelope: Envelope) -> None:
    Effect.objects.create(
        receiver=effect_name(name, event.payload["key"], event.payload["n"]),
        event_id=envelope.event_id,
        attempt=envelope.attempt,
    )


def ordered(event: NamedEvent, envelope: Envelope) -> None:
    """Fails the first attempt of the events that ask for it, gives up on those whose
    ``give_up_while`` file exists, and records its effect otherwise."""
    blocker = event.payload.get("give_up_while")
    if blocker and Path(blocker).exists():
        raise GiveUp(f"{blocker} exists")
    if event.payload.get("fail_first") and envelope.attempt == 1:
        raise RuntimeError("first attempt fails")
    record(ORDERED, event, envelope)


def unordered(event: NamedEvent, envelope: Envelope) -> None:
    """Records its effect."""
    record(UNORDERED, event, envelope)


def register() -> None:
    """Register the receivers above, both run by Celery workers."""
    receiver(STEPPED, name=ORDERED, ordered=True, dispatcher="celery")(ordered)
    receiver(STEPPED, name=UNORDERED, dispatcher="celery")(unordered)
