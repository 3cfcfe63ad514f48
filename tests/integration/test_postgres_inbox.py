"""The inbox on a database server: two consumers racing one message id, each in its own thread
and connection, commit its effects once between them."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from django_domain_events import Envelope
from django_domain_events.declaration.registry import Registry
from django_domain_events.integration.consumers import consumer
from django_domain_events.integration.consuming import Consumed, consume_message
from django_domain_events.integration.inbox import InboxMessage, InboxOutcome
from django_domain_events.integration.messages import Message
from tests.lock_waits import lock_waiters
from tests.processes import wait_until
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

NAME = "integration.inbox.record"


class ConsumingThread(threading.Thread):
    """Consumes ``message`` on a connection of its own; with ``hold``, its receiver waits, its
    effect and inbox row written and uncommitted, until ``release`` is set, then raises if
    ``fail``."""

    def __init__(self, message: Message, *, hold: bool = False) -> None:
        super().__init__()
        self.message = message
        self.hold = hold
        self.outcomes: list[Consumed] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.outcomes = consume_message(self.message, {}, self.message.data, broker=True)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-fails"])
def test_two_consumers_racing_one_message_commit_one_effect(
    receiver_registry: Registry, first_commits: bool
) -> None:
    holding, release = threading.Event(), threading.Event()

    @consumer("integration_inbox.settled", name=NAME)
    def record(event: Any, envelope: Envelope) -> None:
        Effect.record(NAME, envelope)
        if getattr(threading.current_thread(), "hold", False):
            holding.set()
            if not release.wait(timeout=60):
                raise TimeoutError("never released")
            if not first_commits:
                raise RuntimeError("the first copy fails")

    message = Message(
        id=str(uuid.uuid4()),
        source="//shop",
        type="integration_inbox.settled",
        time=timezone.now(),
        data=json.dumps({"payment_id": 7}).encode(),
    )
    first, second = ConsumingThread(message, hold=True), ConsumingThread(message)
    first.start()
    try:
        assert holding.wait(timeout=60)
        second.start()
        # The second copy's insert of its inbox row waits on the first's uncommitted one.
        wait_until(lambda: lock_waiters() > 0, "the second copy to wait for the first's row")
        release.set()
        first.join(timeout=60)
        second.join(timeout=60)
    finally:
        release.set()
        for thread in (first, second):
            if thread.ident is not None:
                thread.join(timeout=60)

    assert (first.error, second.error) == (None, None)
    assert Effect.objects.filter(receiver=NAME).count() == 1
    row = InboxMessage.objects.get(message_id=message.id)
    if first_commits:
        assert (first.outcomes, second.outcomes) == ([Consumed.PROCESSED], [Consumed.DUPLICATE])
        assert row.attempts == 0
    else:
        assert second.outcomes == [Consumed.PROCESSED]
        # The first's failure, recorded after the second committed, leaves the row processed.
        assert first.outcomes == [Consumed.DUPLICATE]
        assert row.outcome == InboxOutcome.PROCESSED
