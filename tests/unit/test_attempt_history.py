"""Attempt history: every failed run of a receiver is kept (when, how long, the error and its
traceback, where it ran), the newest ATTEMPT_HISTORY per delivery, written with the failure
itself; successes add nothing; retries keep it; pruning deletes it. (A lost connection is no
attempt: tests/integration/test_postgres_attempts.py.)"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

import pytest
from django.db import OperationalError, transaction
from django.test import override_settings

from django_domain_events import Envelope, NamedEvent, publish, receiver, use_dispatcher
from django_domain_events.checks import check_settings
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery import attempts
from django_domain_events.delivery.runner import Outcome, owed_delivery, run_delivery
from django_domain_events.exceptions import ReceiverTimedOut
from django_domain_events.models import (
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    OutboxEvent,
)
from django_domain_events.operations.pruning import prune_events
from django_domain_events.operations.redelivery import retry_deliveries
from django_domain_events.testing import drain

pytestmark = pytest.mark.django_db(transaction=True)

FLAKY = "unit_attempts.flaky"
NO_BACKOFF = {"RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0}


@pytest.fixture
def flaky(receiver_registry: Registry) -> dict[str, int]:
    """A receiver that fails its first ``fail`` runs, then succeeds."""
    state = {"fail": 2, "runs": 0}

    @receiver(FLAKY, name="unit_attempts.flaky", max_attempts=30)
    def flaky_receiver(event: NamedEvent, envelope: Envelope) -> None:
        state["runs"] += 1
        if state["runs"] <= state["fail"]:
            raise ValueError(f"run {state['runs']} broke")

    return state


def published() -> Delivery:
    with use_dispatcher("deferred"):
        publish(FLAKY, {"n": 1})
    return Delivery.objects.get()


def run_once(delivery: Delivery) -> Outcome:
    return run_delivery(owed_delivery(Delivery.objects.get(pk=delivery.pk), "default"))


@override_settings(DOMAIN_EVENTS=NO_BACKOFF)
def test_each_failed_attempt_is_kept_with_its_time_error_traceback_and_worker(
    flaky: dict[str, int],
) -> None:
    delivery = published()

    assert drain().delivered == 1

    history = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("id"))
    assert [row.attempt for row in history] == [1, 2]
    assert [row.error for row in history] == ["ValueError: run 1 broke", "ValueError: run 2 broke"]
    assert all("flaky_receiver" in row.traceback for row in history)
    assert all(row.outcome == AttemptOutcome.FAILED for row in history)
    assert all(row.worker == f"{socket.gethostname()}:{os.getpid()}" for row in history)
    assert all(row.duration >= dt.timedelta(0) for row in history)
    assert history[0].started_at <= history[1].started_at
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


def test_a_success_records_no_attempt(flaky: dict[str, int]) -> None:
    flaky["fail"] = 0
    delivery = published()

    assert run_once(delivery) is Outcome.DELIVERED

    assert not DeliveryAttempt.objects.exists()


@override_settings(DOMAIN_EVENTS={**NO_BACKOFF, "ATTEMPT_HISTORY": 3})
def test_only_the_newest_attempts_are_kept(flaky: dict[str, int]) -> None:
    flaky["fail"] = 7
    delivery = published()

    for _ in range(7):
        assert run_once(delivery) is Outcome.FAILED

    kept = DeliveryAttempt.objects.filter(delivery=delivery).order_by("id")
    assert [row.attempt for row in kept] == [5, 6, 7]
    assert Delivery.objects.get().attempts == 7


@override_settings(DOMAIN_EVENTS={**NO_BACKOFF, "ATTEMPT_HISTORY": 0})
def test_a_history_of_zero_records_nothing(flaky: dict[str, int]) -> None:
    delivery = published()

    assert run_once(delivery) is Outcome.FAILED

    assert not DeliveryAttempt.objects.exists()
    assert Delivery.objects.get().last_error == "ValueError: run 1 broke"


def test_a_timeout_is_an_attempt_of_its_own_kind(receiver_registry: Registry) -> None:
    @receiver(FLAKY, name="unit_attempts.slow", max_attempts=3)
    def slow(event: NamedEvent) -> None:
        raise ReceiverTimedOut("unit_attempts.slow", 0.5)

    delivery = published()
    run_once(delivery)

    (row,) = DeliveryAttempt.objects.all()
    assert row.outcome == AttemptOutcome.TIMED_OUT
    assert "timed out after 0.5 s" in row.error


def test_the_history_is_written_in_the_transaction_that_settles_the_failure(
    flaky: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A history row that cannot be written rolls the failure's record back with it: the
    # delivery stays owed, as when recording the failure fails, and no half is left.
    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("disk full")

    monkeypatch.setattr(DeliveryAttempt, "save", broken)
    delivery = published()

    assert run_once(delivery) is Outcome.FAILED

    row = Delivery.objects.get()
    assert (row.state, row.attempts, row.last_error) == (DeliveryState.PENDING, 0, "")
    assert not DeliveryAttempt.objects.exists()


@override_settings(DOMAIN_EVENTS=NO_BACKOFF)
def test_a_retry_keeps_the_history_and_its_attempts_count_from_one_again(
    flaky: dict[str, int],
) -> None:
    flaky["fail"] = 3
    delivery = published()
    assert run_once(delivery) is Outcome.FAILED
    assert run_once(delivery) is Outcome.FAILED
    Delivery.objects.update(state=DeliveryState.DEAD)

    with use_dispatcher("deferred"), transaction.atomic():
        retry_deliveries([delivery])
    assert drain().delivered == 1

    history = DeliveryAttempt.objects.filter(delivery=delivery).order_by("id")
    assert [(row.attempt, row.error) for row in history] == [
        (1, "ValueError: run 1 broke"),
        (2, "ValueError: run 2 broke"),
        (1, "ValueError: run 3 broke"),
    ]


def test_the_celery_task_id_is_recorded_when_given(flaky: dict[str, int]) -> None:
    delivery = published()
    task_id = str(uuid.uuid4())

    with attempts.running_in_task(task_id):
        run_once(delivery)
    run_once(delivery)

    assert list(DeliveryAttempt.objects.order_by("id").values_list("task_id", flat=True)) == [
        task_id,
        "",
    ]


@override_settings(DOMAIN_EVENTS=NO_BACKOFF)
def test_pruning_deletes_the_history_with_its_delivery(flaky: dict[str, int]) -> None:
    flaky["fail"] = 1
    delivery = published()
    assert drain().delivered == 1
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    Delivery.objects.update(created_at=old, last_attempt_at=old)
    OutboxEvent.objects.update(occurred_at=old)

    result = prune_events(dt.timedelta(days=1))

    assert (result.events, result.deliveries) == (1, 1)
    assert not DeliveryAttempt.objects.exists()


def test_deleting_an_event_deletes_its_deliveries_history(flaky: dict[str, int]) -> None:
    delivery = published()
    run_once(delivery)

    OutboxEvent.objects.all().delete()

    assert not DeliveryAttempt.objects.exists()


@pytest.mark.parametrize("value", [-1, 2.5, True, "20"])
def test_a_bad_attempt_history_setting_is_a_check_error(value: object) -> None:
    with override_settings(DOMAIN_EVENTS={"ATTEMPT_HISTORY": value}):
        errors = check_settings()

    assert [error.id for error in errors] == ["django_domain_events.E002"]
    assert "ATTEMPT_HISTORY" in errors[0].msg
