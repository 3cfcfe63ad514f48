"""Receivers the Celery integration tests publish to, run by a real Celery worker.

Autodiscovery imports this module in the test process and in the worker alike, so both know
them by name. Each records its effect as an ``Effect`` row in the receiver's transaction.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_domain_events import Envelope, GiveUp, NamedEvent, RetryAfter, receiver

from .models import Effect

RECORDED = "celery_tests.recorded"
FLAKY = "celery_tests.flaky"
DOOMED = "celery_tests.doomed"
HELD = "celery_tests.held"
HUNG = "celery_tests.hung"


@receiver(RECORDED, dispatcher="celery", name="celery_tests.record")
def record_sync(event: NamedEvent, envelope: Envelope) -> None:
    Effect.record("celery_tests.record", envelope)


@receiver(RECORDED, dispatcher="celery", name="celery_tests.record_async")
async def record_async(event: NamedEvent, envelope: Envelope) -> None:
    await Effect.arecord("celery_tests.record_async", envelope)


@receiver(FLAKY, dispatcher="celery", name="celery_tests.flaky")
def flaky(event: NamedEvent, envelope: Envelope) -> None:
    """Asks to be retried after ``retry_after`` seconds until attempt ``succeed_at``."""
    if envelope.attempt < event.payload["succeed_at"]:
        raise RetryAfter(event.payload["retry_after"])
    Effect.record("celery_tests.flaky", envelope)


@receiver(DOOMED, dispatcher="celery", name="celery_tests.doomed")
def doomed(event: NamedEvent, envelope: Envelope) -> None:
    Effect.record("celery_tests.doomed", envelope)  # rolled back with the attempt
    raise GiveUp("the order was cancelled")


@receiver(HELD, dispatcher="celery", name="celery_tests.held")
def held(event: NamedEvent, envelope: Envelope) -> None:
    """Writes its process id to the ``started`` file, then waits while the ``hold`` file
    exists (at most 30 s), so a test can act while the receiver runs."""
    Path(event.payload["started"]).write_text(str(os.getpid()))
    hold = Path(event.payload["hold"])
    deadline = time.monotonic() + 30
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Effect.record("celery_tests.held", envelope)


@receiver(HUNG, dispatcher="celery", name="celery_tests.hung", timeout=1, max_attempts=1)
def hung(event: NamedEvent, envelope: Envelope) -> None:
    """Records its effect, then never returns: its time limit ends it."""
    Effect.record("celery_tests.hung", envelope)
    while True:
        time.sleep(3600)
