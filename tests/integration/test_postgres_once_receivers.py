"""``@receiver(..., once=True)`` on PostgreSQL: two transactions publishing at the same time,
and separate processes, deliver the receiver exactly one event between them."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable

import pytest
from django.db import connections, transaction

from django_domain_events import publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, OnceReceiverClaim, OutboxEvent
from tests.lock_waits import lock_waiters
from tests.processes import ROOT, process_env, wait_until

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]

EVENT = "integration_once.signed_up"
NAME = "integration.once.welcome"

# A process of its own: registers the same once receiver and publishes ``count`` events, each in
# its own transaction, printing their ids.
PUBLISHER = f"""
import sys, django
django.setup()
from django.db import transaction
from django_domain_events import publish, receiver
receiver({EVENT!r}, name={NAME!r}, once=True, dispatcher="deferred")(print)
for n in range(int(sys.argv[1])):
    with transaction.atomic():
        print(publish({EVENT!r}, {{"n": n}}))
"""


def delivered() -> list[uuid.UUID]:
    return list(Delivery.objects.filter(receiver=NAME).values_list("event_id", flat=True))


class Publisher(threading.Thread):
    """Publishes one event in a transaction of its own connection, and ends that transaction
    (commit, or rollback with ``roll_back``) once ``finish`` is set."""

    def __init__(self, finish: threading.Event, *, roll_back: bool = False) -> None:
        super().__init__()
        self.finish = finish
        self.roll_back = roll_back
        self.published = threading.Event()
        self.event_id: uuid.UUID | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # The receiver's own dispatcher is "deferred": nothing runs it in these threads.
            with transaction.atomic():
                self.event_id = publish(EVENT, {"thread": self.name})
                self.published.set()
                if not self.finish.wait(timeout=60):
                    raise TimeoutError("never told to finish")
                if self.roll_back:
                    transaction.set_rollback(True)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.published.set()
            connections.close_all()


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
def test_a_concurrent_publish_waits_for_the_first_claim_and_wins_only_if_it_rolls_back(
    receiver_registry: Registry, first_commits: bool
) -> None:
    receiver(EVENT, name=NAME, once=True, dispatcher="deferred")(print)
    first_done, second_done = threading.Event(), threading.Event()
    first = Publisher(first_done, roll_back=not first_commits)
    second = Publisher(second_done)
    first.start()
    try:
        assert first.published.wait(timeout=60)
        assert first.error is None
        second.start()
        # The second INSERT of the claim waits on the first transaction's uncommitted row.
        wait_until(lambda: lock_waiters() > 0, "the second publish to wait for the first's claim")
        assert not second.published.is_set()
        first_done.set()
        first.join(timeout=60)
        assert second.published.wait(timeout=60)
        second_done.set()
        second.join(timeout=60)
    finally:
        first_done.set()
        second_done.set()
        first.join(timeout=60)
        second.join(timeout=60)

    assert (first.error, second.error) == (None, None)
    winner = first.event_id if first_commits else second.event_id
    assert delivered() == [winner]
    assert OnceReceiverClaim.objects.get(receiver=NAME).event_id == winner
    published = 2 if first_commits else 1
    assert OutboxEvent.objects.filter(event_type=EVENT).count() == published


def run_publisher(count: int) -> Callable[[], list[uuid.UUID]]:
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(count)],
        cwd=ROOT,
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def result() -> list[uuid.UUID]:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        return [uuid.UUID(line) for line in out.split()]

    return result


def test_processes_publishing_at_once_deliver_one_event_between_them(
    receiver_registry: Registry,
) -> None:
    receiver(EVENT, name=NAME, once=True, dispatcher="deferred")(print)
    results = [run_publisher(10), run_publisher(10)]
    ids = [event_id for result in results for event_id in result()]

    assert len(ids) == 20
    [winner] = delivered()
    assert winner in ids
    assert OnceReceiverClaim.objects.get(receiver=NAME).event_id == winner

    # And a later process, or this one, publishing again: no delivery.
    later = run_publisher(1)()
    here = publish(EVENT, {"n": "here"})
    assert delivered() == [winner]
    assert OutboxEvent.objects.filter(pk__in=[*later, here]).count() == 2
