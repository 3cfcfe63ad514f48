"""The django.tasks dispatcher with django-tasks-db's real ``db_worker`` processes on
PostgreSQL: receivers run in the worker, retries go through the relay and end dead, and neither
a duplicated task nor a worker killed mid-receiver makes an effect happen twice."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from django_domain_events import publish
from django_domain_events.delivery.attempts import worker_name
from django_domain_events.delivery.loading import load_delivery
from django_domain_events.delivery.relay import Relay
from django_domain_events.dispatchers.tasks.dispatcher import delivery_task
from django_domain_events.models import Delivery, DeliveryAttempt, DeliveryState
from tests.integration.tasks.conftest import DbWorker
from tests.processes import wait_until
from tests.tasksapp import receivers
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def settled(event_id: uuid.UUID, count: int = 1) -> list[Delivery]:
    """The event's deliveries once ``count`` of them are delivered or dead, else []."""
    rows = list(Delivery.objects.filter(event_id=event_id).order_by("receiver"))
    done = [row for row in rows if row.state in (DeliveryState.DELIVERED, DeliveryState.DEAD)]
    return rows if len(done) >= count else []


def effects(event_id: uuid.UUID) -> list[tuple[str, int]]:
    return sorted(Effect.objects.filter(event_id=event_id).values_list("receiver", "attempt"))


def logs(workers: list[DbWorker]) -> str:
    return "\n".join(worker.log() for worker in workers)


def test_sync_and_async_receivers_run_in_the_worker(workers: list[DbWorker], queue: str) -> None:
    workers[0].start()
    with transaction.atomic():
        event_id = publish(receivers.RECORDED, {"order_id": 7})

    tasks = DBTaskResult.objects.filter(queue_name=queue)

    def finished() -> list[Delivery]:
        # The worker records a task's result in a commit of its own, after the delivery's.
        if tasks.filter(status__in=("READY", "RUNNING")).exists():
            return []
        return settled(event_id, 2)

    rows = wait_until(finished, "both deliveries and their tasks", report=lambda: logs(workers))

    assert [(row.receiver, row.state, row.attempts) for row in rows] == [
        ("tasks_tests.record", DeliveryState.DELIVERED, 1),
        ("tasks_tests.record_async", DeliveryState.DELIVERED, 1),
    ]
    assert effects(event_id) == [("tasks_tests.record", 1), ("tasks_tests.record_async", 1)]
    assert sorted(tasks.values_list("status", "return_value")) == [
        ("SUCCESSFUL", "delivered"),
        ("SUCCESSFUL", "delivered"),
    ]


def test_a_failing_receiver_is_retried_through_the_relay_and_ends_dead(
    workers: list[DbWorker],
) -> None:
    workers[0].start()
    event_id = publish(receivers.FAILING, {})
    relay = Relay()

    def dead() -> list[Delivery]:
        relay.run_pass()  # sends each retry once it is recorded as due
        rows = settled(event_id)
        return rows if rows and rows[0].state == DeliveryState.DEAD else []

    [row] = wait_until(dead, "the delivery to go dead", report=lambda: logs(workers))

    assert row.attempts == 3
    assert "the CRM is down (attempt 3)" in row.last_error
    # Every attempt's effect was rolled back with it.
    assert effects(event_id) == []
    # And every attempt is in the delivery's history, run by a worker process, not this one.
    history = DeliveryAttempt.objects.filter(delivery=row).order_by("id")
    assert [attempt.attempt for attempt in history] == [1, 2, 3]
    assert all(f"(attempt {a.attempt})" in a.error for a in history)
    assert all(a.worker != worker_name() for a in history)


def test_two_copies_of_one_task_run_the_receiver_once(workers: list[DbWorker], queue: str) -> None:
    event_id = publish(receivers.RECORDED, {})
    for row in Delivery.objects.filter(event_id=event_id):
        loaded = load_delivery(row.pk, "default")
        assert loaded is not None
        delivery_task(loaded.owed).enqueue(str(row.pk), "default")  # the copy
    for worker in workers:
        worker.start()

    def all_done() -> list[tuple[str, str]]:
        found = list(
            DBTaskResult.objects.filter(queue_name=queue).values_list("status", "return_value")
        )
        return found if len(found) == 4 and all(s == "SUCCESSFUL" for s, _ in found) else []

    outcomes = wait_until(all_done, "the four tasks to finish", report=lambda: logs(workers))

    assert sorted(value for _, value in outcomes) == [
        "delivered",
        "delivered",
        "skipped",
        "skipped",
    ]
    assert effects(event_id) == [("tasks_tests.record", 1), ("tasks_tests.record_async", 1)]


def test_a_worker_killed_mid_receiver_leaves_the_delivery_to_the_relay(
    workers: list[DbWorker], queue: str, tmp_path: Path
) -> None:
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.touch()
    first, second = workers
    first.start()
    event_id = publish(receivers.HELD, {"started": str(started), "hold": str(hold)})
    wait_until(started.exists, "the receiver to start", report=first.log)

    first.kill()
    hold.unlink()

    # The receiver's transaction died with the worker: the delivery is still dispatched, and
    # django-tasks-db leaves its task RUNNING, never to be run again.
    [row] = Delivery.objects.filter(event_id=event_id)
    assert (row.state, row.attempts) == (DeliveryState.DISPATCHED, 0)
    assert list(DBTaskResult.objects.filter(queue_name=queue).values_list("status", flat=True)) == [
        "RUNNING"
    ]
    # Once its dispatch is older than DISPATCH_TIMEOUT (here at once), the relay sends it again
    # (as soon as PostgreSQL has ended the killed worker's session and released its row lock).
    relay = Relay(dispatch_timeout=0)
    wait_until(lambda: relay.run_pass().sent, "the relay to send the delivery again")
    second.start()

    [row] = wait_until(lambda: settled(event_id), "the delivery", report=lambda: logs(workers))

    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 1)
    assert effects(event_id) == [("tasks_tests.held", 1)]
