"""Receivers the django.tasks integration tests publish to, run by a real ``db_worker``.

This app is installed by ``tests.tasks_settings`` (the worker's settings); the tests import this
module, so both processes know the receivers by name. Each records its effect as an ``Effect``
row in the receiver's transaction.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_domain_events import Envelope, NamedEvent, receiver
from tests.testapp.models import Effect

RECORDED = "tasks_tests.recorded"
FAILING = "tasks_tests.failing"
HELD = "tasks_tests.held"


@receiver(RECORDED, dispatcher="tasks", name="tasks_tests.record")
def record_sync(event: NamedEvent, envelope: Envelope) -> None:
    Effect.record("tasks_tests.record", envelope)


@receiver(RECORDED, dispatcher="tasks", name="tasks_tests.record_async")
async def record_async(event: NamedEvent, envelope: Envelope) -> None:
    await Effect.arecord("tasks_tests.record_async", envelope)


@receiver(FAILING, dispatcher="tasks", name="tasks_tests.failing", max_attempts=3)
def failing(event: NamedEvent, envelope: Envelope) -> None:
    Effect.record("tasks_tests.failing", envelope)  # rolled back with the attempt
    raise RuntimeError(f"the CRM is down (attempt {envelope.attempt})")


@receiver(HELD, dispatcher="tasks", name="tasks_tests.held")
def held(event: NamedEvent, envelope: Envelope) -> None:
    """Writes its process id to the ``started`` file, then waits while the ``hold`` file
    exists (at most 30 s), so a test can act while the receiver runs."""
    Path(event.payload["started"]).write_text(str(os.getpid()))
    hold = Path(event.payload["hold"])
    deadline = time.monotonic() + 30
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Effect.record("tasks_tests.held", envelope)
