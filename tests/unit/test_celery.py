"""The Celery dispatcher and task in this process, on Celery's in-memory broker: what is sent
where, what the outbox records, how the task treats bad input and schedules retries. Real
brokers and workers are in tests/integration/celery."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.transport.virtual import Message

import django_domain_events.dispatchers.celery.tasks  # noqa: F401 - registers the task with every Celery app
from django_domain_events import (
    DomainEvent,
    Envelope,
    GiveUp,
    NamedEvent,
    RetryAfter,
    publish,
    publish_many,
    receiver,
)
from django_domain_events.checks import check_receivers, check_settings
from django_domain_events.declaration.registry import Registry
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.dispatchers.celery.dispatcher import (
    TASK_NAME,
    CeleryDispatcher,
    bounded_producers,
    keeps_results,
    mark_dispatched,
    publish_retry_policy,
)
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.imports_probe import imported_by_a_plain_publish

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "django_domain_events"

# Never Celery's default app (no Django fixup), so it cannot leak into other tests.
memory_app = Celery("dde-unit", broker="memory://", set_as_current=False, fixups=[])
memory_app.conf.update(task_default_queue="dde-unit-default")
not_an_app = object()


@pytest.fixture
def queue() -> str:
    return f"dde-unit-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def celery_settings(queue: str) -> Iterator[None]:
    with override_settings(
        DOMAIN_EVENTS={"CELERY_APP": "tests.unit.test_celery.memory_app", "CELERY_QUEUE": queue}
    ):
        yield


def take(queue: str) -> list[Message]:
    """Remove and return the messages waiting in ``queue``."""
    messages = []
    with memory_app.connection_for_read() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            messages.append(message)
    return messages


def run_task(*args: Any) -> str:
    """Run the delivery task here, as a worker would."""
    result: str = memory_app.tasks[TASK_NAME].apply(args=args).get()
    return result


# The dispatcher -------------------------------------------------------------------------------


@pytest.mark.usefixtures("celery_settings")
def test_one_json_task_per_delivery_carries_only_its_id_to_its_queue(
    receiver_registry: Registry, queue: str
) -> None:
    receiver("unit_celery.placed", dispatcher="celery", name="unit_celery.crm", queue="crm")(print)
    receiver("unit_celery.placed", dispatcher="celery", name="unit_celery.mail")(print)

    event_id = publish("unit_celery.placed", {"secret": "stays in the outbox"})

    [to_crm], [to_default] = take("crm"), take(queue)
    for message, name in ((to_crm, "unit_celery.crm"), (to_default, "unit_celery.mail")):
        delivery = Delivery.objects.get(event_id=event_id, receiver=name)
        assert message.content_type == "application/json"
        assert message.headers["task"] == TASK_NAME
        assert message.decode()[0] == [str(delivery.pk), "default"]
        assert b"stays in the outbox" not in message.body
        # The outbox records the task that carries each delivery.
        assert delivery.state == DeliveryState.DISPATCHED
        assert delivery.task_id == message.headers["id"]
        assert delivery.dispatched_at is not None
        # No result backend of django-celery-results: the task's result is not kept.
        assert message.headers["ignore_result"] is True


@pytest.mark.usefixtures("celery_settings")
def test_sending_after_the_commit_writes_nothing(receiver_registry: Registry, queue: str) -> None:
    receiver("unit_celery.quiet", dispatcher="celery", name="unit_celery.quiet")(print)
    connection = transaction.get_connection()

    with CaptureQueriesContext(connection) as queries:
        event_id = publish("unit_celery.quiet", {})

    [message] = take(queue)
    delivery = Delivery.objects.get(event_id=event_id)
    # The row was written dispatched, named after its task; the send wrote nothing more.
    assert (delivery.state, delivery.task_id) == (DeliveryState.DISPATCHED, str(delivery.pk))
    assert message.headers["id"] == str(delivery.pk)
    assert not [query for query in queries if query["sql"].lstrip().upper().startswith("UPDATE")]


@pytest.mark.usefixtures("celery_settings")
def test_deliveries_the_broker_refuses_go_back_to_pending(
    receiver_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver("unit_celery.refused", dispatcher="celery", name="unit_celery.refused")(print)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(memory_app, "send_task", refuse)
    event_id = publish("unit_celery.refused", {})

    delivery = Delivery.objects.get(event_id=event_id)
    assert (delivery.state, delivery.dispatched_at, delivery.task_id) == (
        DeliveryState.PENDING,
        None,
        "",
    )


@pytest.mark.usefixtures("celery_settings")
def test_each_task_carries_its_receiver_s_time_limits(
    receiver_registry: Registry, queue: str
) -> None:
    receiver("unit_celery.limited", dispatcher="celery", name="unit_celery.own", timeout=30)(print)
    receiver("unit_celery.limited", dispatcher="celery", name="unit_celery.default")(print)

    publish("unit_celery.limited", {})

    by_receiver = {  # a task sent at commit has its delivery's id
        Delivery.objects.get(pk=message.headers["id"]).receiver: message.headers["timelimit"]
        for message in take(queue)
    }
    # Celery's header is [hard, soft]: the worker kills the process 10 s after the soft limit.
    assert by_receiver == {"unit_celery.own": [40.0, 30.0], "unit_celery.default": [310.0, 300.0]}


def test_without_a_queue_celery_routing_decides(receiver_registry: Registry) -> None:
    receiver("unit_celery.routed", dispatcher="celery", name="unit_celery.routed")(print)
    take("dde-unit-default")

    with override_settings(DOMAIN_EVENTS={"CELERY_APP": "tests.unit.test_celery.memory_app"}):
        publish("unit_celery.routed", {})

    [message] = take("dde-unit-default")  # memory_app's task_default_queue
    assert message.headers["task"] == TASK_NAME


@pytest.mark.usefixtures("celery_settings")
def test_one_producer_carries_a_transaction_s_tasks(
    receiver_registry: Registry, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver("unit_celery.many", dispatcher="celery", name="unit_celery.many")(print)
    pool = bounded_producers(memory_app, 1.0)  # the dispatcher's: kombu keeps one per broker
    acquired: list[object] = []
    acquire = pool.acquire
    monkeypatch.setattr(pool, "acquire", lambda *a, **kw: acquired.append(1) or acquire(*a, **kw))

    publish_many([NamedEvent("unit_celery.many", {"n": n}) for n in range(3)])

    assert len(take(queue)) == 3
    assert len(acquired) == 1
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DISPATCHED}


def test_an_app_setting_that_names_no_app_leaves_deliveries_owed(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    receiver("unit_celery.lost", dispatcher="celery", name="unit_celery.lost")(print)

    with (
        override_settings(DOMAIN_EVENTS={"CELERY_APP": "tests.unit.test_celery.not_an_app"}),
        caplog.at_level(logging.ERROR, LOGGER),
    ):
        publish("unit_celery.lost", {})

    assert Delivery.objects.get().state == DeliveryState.PENDING
    assert "is <object object" in caplog.text
    assert "not a Celery app" in caplog.text


eager_app = Celery("dde-unit-eager", broker="memory://", set_as_current=False, fixups=[])
eager_app.conf.update(task_always_eager=True)


def test_celery_s_eager_mode_runs_the_tasks_at_commit(receiver_registry: Registry) -> None:
    ran: list[NamedEvent] = []
    receiver("unit_celery.eager", dispatcher="celery", name="unit_celery.eager")(ran.append)

    @receiver("unit_celery.eager", dispatcher="celery", name="unit_celery.eager_fails")
    def fails(event: NamedEvent) -> None:
        raise RetryAfter(1)

    with override_settings(DOMAIN_EVENTS={"CELERY_APP": "tests.unit.test_celery.eager_app"}):
        publish("unit_celery.eager", {"n": 1})

    assert [event.payload for event in ran] == [{"n": 1}]
    states = dict(Delivery.objects.values_list("receiver", "state"))
    # The retry is not run at once: it waits for drain() or the relay.
    assert states == {
        "unit_celery.eager": DeliveryState.DELIVERED,
        "unit_celery.eager_fails": DeliveryState.FAILED,
    }


def test_mark_dispatched_leaves_deliveries_a_worker_has_moved_on(
    receiver_registry: Registry,
) -> None:
    receiver("unit_celery.marked", name="unit_celery.marked", dispatcher="deferred")(print)
    ids = [publish("unit_celery.marked", {"n": n}) for n in range(4)]
    rows = [Delivery.objects.get(event_id=event_id) for event_id in ids]
    pending, delivered, failed_since, failed = rows
    Delivery.objects.filter(pk=delivered.pk).update(state=DeliveryState.DELIVERED, attempts=1)
    Delivery.objects.filter(pk__in=[failed_since.pk, failed.pk]).update(
        state=DeliveryState.FAILED, attempts=1
    )

    def owed(row: Delivery, attempts: int) -> tuple[OwedDelivery, str]:
        sent = OwedDelivery(row.pk, row.receiver, "celery", "", "default", attempts=attempts)
        return sent, f"task-{row.pk}"

    marked = mark_dispatched(
        "default",
        [owed(pending, 0), owed(delivered, 0), owed(failed_since, 0), owed(failed, 1)],
    )

    assert marked == 2
    states = {row.pk: row for row in Delivery.objects.all()}
    assert [(states[row.pk].state, states[row.pk].task_id) for row in rows] == [
        (DeliveryState.DISPATCHED, f"task-{pending.pk}"),
        (DeliveryState.DELIVERED, ""),
        (DeliveryState.FAILED, ""),  # failed again since it was sent
        (DeliveryState.DISPATCHED, f"task-{failed.pk}"),
    ]


@pytest.mark.parametrize("count", [1, 2])
def test_mark_dispatched_inside_a_transaction_belongs_to_it(
    receiver_registry: Registry, count: int
) -> None:
    receiver("unit_celery.inside", name="unit_celery.inside", dispatcher="deferred")(print)
    for n in range(count):
        publish("unit_celery.inside", {"n": n})
    sent = [
        (OwedDelivery(pk, "unit_celery.inside", "celery", "", "default"), f"task-{pk}")
        for pk in Delivery.objects.values_list("pk", flat=True)
    ]

    with transaction.atomic():
        assert mark_dispatched("default", sent) == count
        transaction.set_rollback(True)

    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}
    with transaction.atomic():
        assert mark_dispatched("default", sent) == count
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DISPATCHED}


def test_results_are_kept_only_in_django_celery_results_database() -> None:
    assert keeps_results(memory_app) is False
    results_app = Celery("dde-unit-results", backend="django-db", set_as_current=False, fixups=[])
    assert keeps_results(results_app) is True
    redis_results = Celery(
        "dde-unit-redis", backend="redis://127.0.0.1:1/0", set_as_current=False, fixups=[]
    )
    assert keeps_results(redis_results) is False


@pytest.mark.parametrize(("timeout", "retries"), [(0, 1), (0.2, 1), (0.25, 2), (1.5, 4), (2.0, 5)])
def test_publish_retries_wait_at_most_the_publish_timeout(timeout: float, retries: int) -> None:
    policy = publish_retry_policy(timeout)

    assert policy["max_retries"] == retries
    # kombu waits interval_start, then adds interval_step per retry up to interval_max.
    waits = [
        min(policy["interval_start"] + n * policy["interval_step"], policy["interval_max"])
        for n in range(retries)
    ]
    assert sum(waits) <= timeout


# The task -------------------------------------------------------------------------------------


@pytest.fixture
def ran() -> list[Envelope]:
    """The envelopes ``deferred_delivery``'s receiver was run with."""
    return []


@pytest.fixture
def deferred_delivery(receiver_registry: Registry, ran: list[Envelope]) -> Delivery:
    """A pending delivery, never dispatched, to an async receiver that records its runs."""

    @receiver("unit_celery.ran", dispatcher="deferred", name="unit_celery.ran")
    async def record(event: NamedEvent, envelope: Envelope) -> None:
        ran.append(envelope)

    publish("unit_celery.ran", {})
    return Delivery.objects.get()


def test_the_task_runs_the_delivery(deferred_delivery: Delivery, ran: list[Envelope]) -> None:
    assert run_task(str(deferred_delivery.pk), "default") == "delivered"

    deferred_delivery.refresh_from_db()
    assert (deferred_delivery.state, deferred_delivery.attempts) == (DeliveryState.DELIVERED, 1)
    assert [envelope.delivery_id for envelope in ran] == [deferred_delivery.pk]


def test_the_task_claims_and_loads_in_one_statement_on_postgresql(
    deferred_delivery: Delivery, ran: list[Envelope]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert run_task(str(deferred_delivery.pk), "default") == "delivered"

    statements = [query["sql"] for query in queries.captured_queries]
    if connection.vendor == "postgresql":
        # Nothing read before the transaction: the claim returns the row and its event.
        [begin, claim, commit] = statements
        assert (begin, commit) == ("BEGIN", "COMMIT")
        assert claim.startswith("UPDATE")
        assert "RETURNING" in claim
    else:
        assert [sql.split()[0] for sql in statements] == ["BEGIN", "UPDATE", "SELECT", "COMMIT"]
    assert len(ran) == 1


def test_the_task_makes_a_delivery_to_an_unknown_receiver_dead_without_an_attempt(
    deferred_delivery: Delivery, ran: list[Envelope]
) -> None:
    Delivery.objects.update(receiver="unit_celery.renamed")

    assert run_task(str(deferred_delivery.pk), "default") == "dead"

    deferred_delivery.refresh_from_db()
    assert (deferred_delivery.state, deferred_delivery.attempts) == (DeliveryState.DEAD, 0)
    assert "No receiver named 'unit_celery.renamed'" in deferred_delivery.last_error
    assert ran == []


def test_the_task_hands_the_receiver_the_event_as_stored(receiver_registry: Registry) -> None:
    got: list[tuple[NamedEvent, Envelope]] = []

    @receiver("unit_celery.stored", dispatcher="deferred", name="unit_celery.stored")
    def record(event: NamedEvent, envelope: Envelope) -> None:
        got.append((event, envelope))
        if len(got) == 1:
            raise RetryAfter(0)

    payload = {"text": 'say "hi" é', "nested": {"list": [1, None, 2.5]}, "big": 2**60}
    event_id = publish("unit_celery.stored", payload, correlation_id="order-42")
    stored = OutboxEvent.objects.get(pk=event_id)
    delivery = Delivery.objects.get(event_id=event_id)

    assert run_task(str(delivery.pk), "default") == "failed"
    assert run_task(str(delivery.pk), "default") == "delivered"

    [(first, first_envelope), (event, envelope)] = got
    assert event.payload == first.payload == payload
    assert (envelope.event_id, envelope.event_type, envelope.version) == (
        stored.pk,
        "unit_celery.stored",
        1,
    )
    assert envelope.occurred_at == stored.occurred_at
    assert (envelope.correlation_id, envelope.causation_id) == ("order-42", stored.causation_id)
    assert (first_envelope.attempt, envelope.attempt) == (1, 2)
    assert envelope.delivery_id == delivery.pk


def test_the_task_makes_an_undecodable_event_dead(receiver_registry: Registry) -> None:
    @dataclass(frozen=True)
    class Shipped(DomainEvent):
        event_type = "unit_celery.Shipped"
        order_id: int

    ran: list[Shipped] = []
    receiver(Shipped, dispatcher="deferred", name="unit_celery.shipped")(ran.append)
    event_id = publish(Shipped(order_id=1))
    # The stored payload no longer fits the class (edited by hand, or the class changed).
    OutboxEvent.objects.filter(pk=event_id).update(payload={"order_id": "one"})
    delivery = Delivery.objects.get(event_id=event_id)

    assert run_task(str(delivery.pk), "default") == "dead"

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DEAD
    assert "order_id" in delivery.last_error
    assert ran == []


@pytest.mark.parametrize(
    "args",
    [
        ("not-a-uuid", "default"),
        (None, "default"),
        (str(uuid.uuid4()), "no_such_database"),
        (str(uuid.uuid4()), 7),
    ],
)
def test_bad_task_input_is_logged_and_dropped(
    args: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, LOGGER):
        assert run_task(*args) == "missing"

    [record] = caplog.records
    assert "not a delivery id and a database alias; dropped" in record.getMessage()


def test_an_unknown_delivery_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    unknown = uuid.uuid4()

    with caplog.at_level(logging.WARNING, LOGGER):
        assert run_task(str(unknown), "default") == "missing"

    assert f"Delivery {unknown} not found in database 'default'" in caplog.text


def test_a_deleted_delivery_is_logged_and_dropped(
    deferred_delivery: Delivery, ran: list[Envelope], caplog: pytest.LogCaptureFixture
) -> None:
    OutboxEvent.objects.all().delete()  # pruned while its task waited in the queue

    with caplog.at_level(logging.WARNING, LOGGER):
        assert run_task(str(deferred_delivery.pk), "default") == "missing"

    assert "not found" in caplog.text
    assert ran == []


@pytest.mark.parametrize("state", [DeliveryState.DELIVERED, DeliveryState.DEAD])
def test_a_settled_delivery_is_not_run_again(
    deferred_delivery: Delivery,
    ran: list[Envelope],
    state: DeliveryState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    Delivery.objects.update(state=state)

    with caplog.at_level(logging.INFO, LOGGER):
        assert run_task(str(deferred_delivery.pk), "default") == "skipped"

    assert f"is {state}; task" in caplog.text
    assert ran == []


@pytest.mark.usefixtures("celery_settings")
def test_a_retry_due_soon_is_sent_through_celery(receiver_registry: Registry, queue: str) -> None:
    @receiver("unit_celery.flaky", dispatcher="celery", name="unit_celery.flaky")
    def flaky(event: NamedEvent) -> None:
        raise RetryAfter(5)

    publish("unit_celery.flaky", {})
    [first] = take(queue)

    assert run_task(*first.decode()[0]) == "failed"

    [retry] = take(queue)
    delivery = Delivery.objects.get()
    assert retry.decode()[0] == first.decode()[0]
    assert (delivery.state, delivery.attempts, delivery.task_id) == (
        DeliveryState.DISPATCHED,
        1,
        retry.headers["id"],
    )
    assert delivery.next_attempt_at is not None
    eta = dt.datetime.fromisoformat(retry.headers["eta"])
    assert abs((eta - delivery.next_attempt_at).total_seconds()) < 1


@pytest.mark.usefixtures("celery_settings")
def test_a_retry_due_later_is_left_to_the_relay(
    receiver_registry: Registry, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    @receiver("unit_celery.slow", dispatcher="celery", name="unit_celery.slow")
    def slow(event: NamedEvent) -> None:
        raise RetryAfter(120)

    publish("unit_celery.slow", {})
    [first] = take(queue)

    with caplog.at_level(logging.INFO, LOGGER):
        assert run_task(*first.decode()[0]) == "failed"

    assert take(queue) == []
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at > timezone.now() + dt.timedelta(seconds=100)
    assert "more than CELERY_MAX_RETRY_DELAY away; left to the relay" in caplog.text


def test_a_retry_never_imports_a_dispatcher_named_only_by_its_row(
    receiver_registry: Registry, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    @receiver("unit_celery.trapped", dispatcher="celery", name="unit_celery.trapped")
    def fails(event: NamedEvent) -> None:
        raise RetryAfter(1)

    with override_settings(
        DOMAIN_EVENTS={"CELERY_APP": "tests.unit.test_celery.memory_app", "CELERY_QUEUE": queue}
    ):
        publish("unit_celery.trapped", {})
        take(queue)
        delivery = Delivery.objects.get()
        # Someone with write access to the table points the row at a module of their choice.
        Delivery.objects.filter(pk=delivery.pk).update(
            dispatcher="tests.unit.relay_trap.TrapDispatcher"
        )
        with caplog.at_level(logging.ERROR, LOGGER):
            assert run_task(str(delivery.pk), "default") == "failed"

    assert "tests.unit.relay_trap" not in sys.modules
    assert "which nothing in this project declares" in caplog.text
    assert take(queue) == []


@pytest.mark.usefixtures("celery_settings")
def test_a_dead_delivery_is_not_retried(receiver_registry: Registry, queue: str) -> None:
    @receiver("unit_celery.doomed", dispatcher="celery", name="unit_celery.doomed")
    def doomed(event: NamedEvent) -> None:
        raise GiveUp("no such customer")

    publish("unit_celery.doomed", {})
    [first] = take(queue)

    assert run_task(*first.decode()[0]) == "dead"
    assert take(queue) == []
    assert Delivery.objects.get().state == DeliveryState.DEAD


# Celery stays out of projects that do not use it ---------------------------------------------


def test_publishing_without_the_celery_dispatcher_never_imports_celery() -> None:
    assert (
        imported_by_a_plain_publish(["celery", "kombu", "billiard", "django_celery_results"])
        == "[]"
    )


def test_the_celery_dispatcher_is_a_builtin_name() -> None:
    with override_settings(DOMAIN_EVENTS={"CELERY_APP": "tests.unit.test_celery.memory_app"}):
        assert isinstance(dispatchers["celery"], CeleryDispatcher)
        assert dispatchers["celery"].app is memory_app


# System checks --------------------------------------------------------------------------------


@pytest.fixture
def without_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Celery look uninstalled to the checks."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "celery" else find_spec(name, *args),
    )


@pytest.mark.usefixtures("without_celery")
def test_e010_the_celery_dispatcher_without_celery_installed(receiver_registry: Registry) -> None:
    receiver("unit_celery.e010", dispatcher="celery", name="unit_celery.e010")(print)

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "celery"}):
        errors = [*check_settings(), *check_receivers()]

    assert [(error.id, error.msg) for error in errors] == [
        (
            "django_domain_events.E010",
            """DOMAIN_EVENTS["DISPATCHER"] is 'celery', but Celery is not installed.""",
        ),
        (
            "django_domain_events.E010",
            "Receiver 'unit_celery.e010' dispatcher is 'celery', but Celery is not installed.",
        ),
    ]
    assert all(
        error.hint == 'Install it with the extra: pip install "django-domain-outbox[celery]".'
        for error in errors
    )


def test_the_celery_dispatcher_with_celery_installed_passes() -> None:
    with override_settings(
        DOMAIN_EVENTS={"DISPATCHER": "celery", "CELERY_APP": "tests.unit.test_celery.memory_app"}
    ):
        assert check_settings() == []


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("CELERY_APP", "", "it must be None or a non-empty string"),
        ("CELERY_APP", 3, "it must be None or a non-empty string"),
        ("CELERY_APP", "tests.unit.test_celery.no_such_app", "cannot be imported"),
        ("CELERY_APP", "tests.unit.test_celery.not_an_app", "not a Celery app"),
        ("CELERY_QUEUE", "", "it must be None or a non-empty string"),
        ("CELERY_PUBLISH_TIMEOUT", -1, "it must be a finite number >= 0"),
        ("CELERY_MAX_RETRY_DELAY", "60", "it must be a finite number >= 0"),
    ],
)
def test_e002_bad_celery_settings(key: str, value: object, problem: str) -> None:
    with override_settings(DOMAIN_EVENTS={key: value}):
        [error] = check_settings()

    assert error.id == "django_domain_events.E002"
    assert problem in error.msg
    assert error.hint
