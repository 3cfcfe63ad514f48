"""Receivers of the wildcard tests. ``register()`` adds them to the registry: the worker
processes call it from their app's ``ready()``, the tests inside their isolated registry.

Each records one ``Effect`` per run that commits, named ``<receiver>:<event type>``.
"""

from __future__ import annotations

from django_domain_events import DomainEvent, Envelope, NamedEvent, receiver
from tests.testapp.models import Effect

PREFIX = "wildcard_tests."
AUDIT = "wildcard_tests.audit"
FIRST = "wildcard_tests.first"


def effect_name(name: str, event_type: str) -> str:
    """The ``Effect.receiver`` a run of receiver ``name`` records for an event of ``event_type``."""
    return f"{name}:{event_type}"


def audit(event: DomainEvent | NamedEvent, envelope: Envelope) -> None:
    Effect.objects.create(
        receiver=effect_name(AUDIT, envelope.event_type),
        event_id=envelope.event_id,
        attempt=envelope.attempt,
    )


def first(event: DomainEvent | NamedEvent, envelope: Envelope) -> None:
    Effect.objects.create(
        receiver=effect_name(FIRST, envelope.event_type),
        event_id=envelope.event_id,
        attempt=envelope.attempt,
    )


def register() -> None:
    """Register the wildcard receivers, on the Celery dispatcher."""
    receiver(f"{PREFIX}*", name=AUDIT, dispatcher="celery")(audit)
    receiver(f"{PREFIX}*", name=FIRST, dispatcher="celery", once=True)(first)
