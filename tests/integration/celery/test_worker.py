"""The Celery dispatcher with a real ``celery worker`` (prefork) on Redis and on RabbitMQ:
receivers run in the worker, retries go through Celery, and neither a duplicated task nor a
worker killed mid-receiver makes an effect happen twice."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.db import transaction
from django_celery_results.models import TaskResult

from django_domain_events import publish
from django_domain_events.delivery.attempts import worker_name
from django_domain_events.dispatchers.celery.dispatcher import TASK_NAME
from django_domain_events.models import AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState
from tests.lock_waits import lock_waiters
from tests.processes import CeleryWorker, wait_until
from tests.testapp import receivers
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def settled(event_id: uuid.UUID, count: int = 1) -> list[Delivery]:
    """The event's deliveries once ``count`` of them are delivered or dead, else []."""
    rows = list(Delivery.objects.filter(event_id=event_id).order_by("receiver"))
    done = [row for row in rows if row.state in (DeliveryState.DELIVERED, DeliveryState.DEAD)]
    return rows if len(done) >= count else []


def effects(event_id: uuid.UUID) -> list[tuple[str, int]]:
    return sorted(Effect.objects.filter(event_id=event_id).values_list("receiver", "attempt"))


def task_results(count: int) -> list[TaskResult]:
    """The test's task results (the table is emptied after each test) once there are
    ``count``, else []."""
    results = list(TaskResult.objects.all())
    return results if len(results) >= count else []


def test_sync_and_async_receivers_run_in_the_worker(worker: CeleryWorker) -> None:
    with transaction.atomic():
        event_id = publish(receivers.RECORDED, {"order_id": 7})
        # Written already dispatched, each with its task id (its own id): sending them after
        # the commit then writes nothing more.
        written = Delivery.objects.filter(event_id=event_id)
        assert {(row.state, row.task_id) for row in written} == {
            (DeliveryState.DISPATCHED, str(row.pk)) for row in written
        }

    rows = wait_until(lambda: settled(event_id, 2), "both deliveries", report=worker.log)

    assert [(row.receiver, row.state, row.attempts) for row in rows] == [
        ("celery_tests.record", DeliveryState.DELIVERED, 1),
        ("celery_tests.record_async", DeliveryState.DELIVERED, 1),
    ]
    assert effects(event_id) == [("celery_tests.record", 1), ("celery_tests.record_async", 1)]
    # With django-celery-results, each task leaves a TaskResult that says how it went.
    results = wait_until(lambda: task_results(2), "the task results", report=worker.log)
    assert sorted((result.status, result.result) for result in results) == [
        ("SUCCESS", '"delivered"'),
        ("SUCCESS", '"delivered"'),
    ]
    # Each delivery names the task that carried it.
    assert {row.task_id for row in rows} == {result.task_id for result in results}


def test_a_failed_attempt_is_retried_through_celery(worker: CeleryWorker) -> None:
    event_id = publish(receivers.FLAKY, {"succeed_at": 2, "retry_after": 0.2})

    [row] = wait_until(lambda: settled(event_id), "the retried delivery", report=worker.log)

    assert (row.state, row.attempts, row.last_error) == (
        DeliveryState.DELIVERED,
        2,
        "RetryAfter: retry requested after 0.2s",
    )
    assert effects(event_id) == [("celery_tests.flaky", 2)]
    # The retry was a task of its own, sent by the first with a countdown.
    found = wait_until(lambda: task_results(2), "the task results", report=worker.log)
    results = {result.task_id: result.result for result in found}
    assert sorted(results.values()) == ['"delivered"', '"failed"']
    assert results[row.task_id] == '"delivered"'
    # The failed attempt is in the delivery's history, with the worker and task that ran it.
    [attempt] = DeliveryAttempt.objects.filter(delivery=row)
    assert (attempt.attempt, attempt.error) == (1, "RetryAfter: retry requested after 0.2s")
    assert results[attempt.task_id] == '"failed"'
    assert attempt.worker.rpartition(":")[0] == worker_name().rpartition(":")[0]  # this host
    assert attempt.worker != worker_name()  # a worker's pool process, not this one


def test_a_receiver_that_gives_up_makes_its_delivery_dead(worker: CeleryWorker) -> None:
    event_id = publish(receivers.DOOMED, {})

    [row] = wait_until(lambda: settled(event_id), "the dead delivery", report=worker.log)

    assert (row.state, row.attempts, row.last_error) == (
        DeliveryState.DEAD,
        1,
        "GiveUp: the order was cancelled",
    )
    assert effects(event_id) == []


def test_a_hung_receiver_is_ended_by_its_time_limit(worker: CeleryWorker) -> None:
    event_id = publish(receivers.HUNG, {})

    [row] = wait_until(lambda: settled(event_id), "the timed-out delivery", report=worker.log)

    assert (row.state, row.attempts) == (DeliveryState.DEAD, 1)
    assert row.last_error.startswith(
        "ReceiverTimedOut: Receiver celery_tests.hung timed out after 1 s"
    )
    assert effects(event_id) == []  # rolled back with the attempt
    [attempt] = DeliveryAttempt.objects.filter(delivery=row)
    assert attempt.outcome == AttemptOutcome.TIMED_OUT


def test_two_copies_of_one_task_run_the_receiver_once(
    worker: CeleryWorker, celery_app: Celery, tmp_path: Path
) -> None:
    hold, started = tmp_path / "hold", tmp_path / "started"
    hold.touch()
    event_id = publish(receivers.HELD, {"hold": str(hold), "started": str(started)})
    delivery = Delivery.objects.get(event_id=event_id)
    copy = str(uuid.uuid4())
    celery_app.send_task(
        TASK_NAME,
        args=[str(delivery.pk), "default"],
        task_id=copy,
        queue=worker.queue,
        ignore_result=False,
    )

    # One copy runs the receiver, holding the row; the other waits for the row's lock.
    wait_until(started.exists, "a copy to start the receiver", report=worker.log)
    wait_until(lock_waiters, "the other copy to wait for the row lock", report=worker.log)
    hold.unlink()

    results = wait_until(lambda: task_results(2), "both copies to finish", report=worker.log)
    assert copy in {result.task_id for result in results}
    # Redis may hand a task held past its visibility timeout out once more: another skip.
    outcomes = sorted(result.result for result in results)
    assert outcomes[0] == '"delivered"'
    assert set(outcomes[1:]) == {'"skipped"'}
    assert effects(event_id) == [("celery_tests.held", 1)]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 1)


def test_a_worker_killed_mid_receiver_leaves_the_effect_exactly_once(
    worker: CeleryWorker, tmp_path: Path
) -> None:
    hold, started = tmp_path / "hold", tmp_path / "started"
    hold.touch()
    event_id = publish(receivers.HELD, {"hold": str(hold), "started": str(started)})
    wait_until(started.exists, "the receiver to start", report=worker.log)

    worker.kill()  # SIGKILL, pool processes included, while the receiver runs
    hold.unlink()
    assert effects(event_id) == []
    worker.start()

    # The broker hands the unacknowledged task to the new worker (RabbitMQ when the
    # connection drops, Redis after the visibility timeout), which runs the receiver again.
    [row] = wait_until(lambda: settled(event_id), "the redelivered task", report=worker.log)
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 1)
    assert effects(event_id) == [("celery_tests.held", 1)]
