"""The ``django.tasks`` dispatcher and its task in this process, on Django's own backends: the
immediate one runs tasks at once, the dummy one keeps what is enqueued. A real ``db_worker`` is
in tests/integration/tasks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("django.tasks", reason="the django.tasks dispatcher needs Django 6")

from django.db import transaction
from django.tasks import task_backends
from django.tasks.backends.dummy import DummyBackend
from django.test import override_settings

from django_domain_events import GiveUp, NamedEvent, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.tasks import TasksDispatcher
from django_domain_events.dispatchers.tasks.tasks import MISSING, deliver
from django_domain_events.models import Delivery, DeliveryState
from tests.imports_probe import imported_by_a_plain_publish

pytestmark = pytest.mark.django_db(transaction=True)

LOGGER = "django_domain_events"


@pytest.fixture
def dummy() -> Iterator[DummyBackend]:
    """The "dummy" backend of the test settings, empty, named by ``TASKS_BACKEND``."""
    backend = task_backends["dummy"]
    assert isinstance(backend, DummyBackend)
    backend.clear()
    with override_settings(DOMAIN_EVENTS={"TASKS_BACKEND": "dummy"}):
        yield backend
    backend.clear()


def test_the_tasks_dispatcher_is_a_builtin_name() -> None:
    assert isinstance(dispatchers["tasks"], TasksDispatcher)


def test_one_task_per_delivery_carries_only_its_id_to_its_queue_and_priority(
    receiver_registry: Registry, dummy: DummyBackend
) -> None:
    receiver("unit_tasks.placed", dispatcher="tasks", name="unit_tasks.crm", queue="crm")(print)
    receiver("unit_tasks.placed", dispatcher="tasks", name="unit_tasks.mail")(print)

    settings = {"TASKS_BACKEND": "dummy", "TASKS_PRIORITIES": {"unit_tasks.crm": 7}}
    with override_settings(DOMAIN_EVENTS=settings), transaction.atomic():
        event_id = publish("unit_tasks.placed", {"secret": "stays in the outbox"})
        # Enqueued on commit, not before.
        assert dummy.results == []

    by_receiver = {row.receiver: row for row in Delivery.objects.filter(event_id=event_id)}
    enqueued = sorted(
        (result.task.queue_name, result.task.priority, result.backend, result.args)
        for result in dummy.results
    )
    assert enqueued == [
        ("crm", 7, "dummy", [str(by_receiver["unit_tasks.crm"].pk), "default"]),
        ("default", 0, "dummy", [str(by_receiver["unit_tasks.mail"].pk), "default"]),
    ]
    assert all(result.task.module_path == deliver.module_path for result in dummy.results)
    # Written dispatched at insert, with the delivery's own id as task id: nothing more after.
    assert {(row.state, row.task_id) for row in by_receiver.values()} == {
        (DeliveryState.DISPATCHED, str(row.pk)) for row in by_receiver.values()
    }


def test_tasks_queue_and_priority_settings_apply_to_receivers_that_name_none(
    receiver_registry: Registry, dummy: DummyBackend
) -> None:
    receiver("unit_tasks.queued", dispatcher="tasks", name="unit_tasks.queued")(print)

    settings = {"TASKS_BACKEND": "dummy", "TASKS_QUEUE": "crm", "TASKS_PRIORITY": -5}
    with override_settings(DOMAIN_EVENTS=settings):
        publish("unit_tasks.queued", {})

    [result] = dummy.results
    assert (result.task.queue_name, result.task.priority) == ("crm", -5)


def test_a_task_the_backend_refuses_leaves_its_delivery_owed_for_the_relay(
    receiver_registry: Registry, dummy: DummyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    receiver("unit_tasks.lost", dispatcher="tasks", name="unit_tasks.nowhere", queue="nowhere")(
        print
    )
    receiver("unit_tasks.lost", dispatcher="tasks", name="unit_tasks.fine")(print)

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        event_id = publish("unit_tasks.lost", {})

    states = dict(Delivery.objects.filter(event_id=event_id).values_list("receiver", "state"))
    assert states == {
        "unit_tasks.nowhere": DeliveryState.PENDING,
        "unit_tasks.fine": DeliveryState.DISPATCHED,
    }
    [result] = dummy.results
    assert result.task.queue_name == "default"
    [record] = caplog.records
    assert "unit_tasks.nowhere" in record.getMessage()
    assert "relay will send it" in record.getMessage()


def test_the_immediate_backend_runs_the_receiver_after_the_commit(
    receiver_registry: Registry,
) -> None:
    seen: list[tuple[object, int]] = []

    @receiver("unit_tasks.now", dispatcher="tasks", name="unit_tasks.now")
    def record(event: NamedEvent) -> None:
        seen.append((event.payload["n"], Delivery.objects.get().attempts))

    with transaction.atomic():
        publish("unit_tasks.now", {"n": 1})
        assert seen == []

    assert seen == [(1, 1)]
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


def test_a_failing_receiver_is_retried_by_the_relay_through_tasks_then_dead(
    receiver_registry: Registry,
) -> None:
    attempts: list[int] = []

    @receiver("unit_tasks.doomed", dispatcher="tasks", name="unit_tasks.doomed")
    def doomed(event: NamedEvent) -> None:
        attempts.append(len(attempts) + 1)
        raise RuntimeError("the CRM is down")

    settings = {"MAX_ATTEMPTS": 3, "RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0}
    with override_settings(DOMAIN_EVENTS=settings):
        publish("unit_tasks.doomed", {})
        row = Delivery.objects.get()
        assert (row.state, row.attempts) == (DeliveryState.FAILED, 1)

        # Each relay batch hands the due retry to the dispatcher, which runs it as a task.
        relay = Relay(grace=0)
        sent = [relay.run_batch().sent for _ in range(3)]

    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.DEAD, 3)
    assert "the CRM is down" in row.last_error
    assert attempts == [1, 2, 3]
    assert sent == [1, 1, 0]


def test_a_second_copy_of_a_task_finds_the_delivery_settled(receiver_registry: Registry) -> None:
    runs: list[str] = []
    receiver("unit_tasks.once", dispatcher="tasks", name="unit_tasks.once")(
        lambda event: runs.append("ran")
    )

    publish("unit_tasks.once", {})
    row = Delivery.objects.get()

    assert deliver.call(str(row.pk), "default") == "skipped"
    assert runs == ["ran"]


def test_a_dead_receiver_stays_dead_when_its_task_runs_again(receiver_registry: Registry) -> None:
    @receiver("unit_tasks.gives_up", dispatcher="tasks", name="unit_tasks.gives_up")
    def gives_up(event: NamedEvent) -> None:
        raise GiveUp("cancelled")

    publish("unit_tasks.gives_up", {})
    row = Delivery.objects.get()

    assert row.state == DeliveryState.DEAD
    assert deliver.call(str(row.pk), "default") == "skipped"


@pytest.mark.parametrize(
    ("delivery_id", "using"),
    [
        ("not-a-uuid", "default"),
        (None, "default"),
        ("01a23844-38b0-717b-8155-9dc2cafc65dc", "no-such-db"),
    ],
)
def test_input_that_names_no_delivery_is_dropped(
    delivery_id: str, using: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert deliver.call(delivery_id, using) == MISSING

    assert "not a delivery id and a database alias" in caplog.text


def test_a_task_whose_delivery_is_gone_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert deliver.call(str(uuid.uuid4()), "default") == MISSING

    assert "not found" in caplog.text


def test_a_plain_publish_imports_nothing_of_django_tasks() -> None:
    assert imported_by_a_plain_publish(["django.tasks", "django_tasks_db"]) == "[]"
