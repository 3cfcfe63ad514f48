"""publish(), publish_many() and apublish(): what they write, in which transaction, and when
the deliveries are dispatched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import DatabaseError, connection, connections, transaction
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from django_domain_events import (
    DomainEvent,
    Envelope,
    NamedEvent,
    PayloadError,
    apublish,
    current_envelope,
    publish,
    publish_many,
    receiver,
    signals,
)
from django_domain_events.declaration.registry import Registry, registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.testapp.models import Order

transactional = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class ItemAdded(DomainEvent):
    event_type = "unit_publishing.item_added"

    item_id: int
    price: Decimal = Decimal("1.00")


@dataclass(frozen=True)
class ItemShipped(DomainEvent):
    event_type = "unit_publishing.item_shipped"

    item_id: int


@dataclass(frozen=True)
class ItemArchived(DomainEvent):
    event_type = "unit_publishing.item_archived"

    item_id: int


NAMED = "unit_publishing.named_thing"


class Boom(Exception):
    pass


@pytest.fixture
def added(receiver_registry: Registry) -> list[ItemAdded]:
    """The ItemAdded events a receiver got, in order (the receiver is the only one registered)."""
    got: list[ItemAdded] = []

    @receiver(ItemAdded, name="unit.publishing.on_added")
    def on_added(event: ItemAdded) -> None:
        got.append(event)

    return got


@pytest.fixture
def published_signals() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``event_published`` signal sent during the test."""
    sent: list[dict[str, Any]] = []

    def listener(sender: type, **kwargs: Any) -> None:
        sent.append({"sender": sender, **kwargs})

    signals.event_published.connect(listener, weak=False)
    try:
        yield sent
    finally:
        signals.event_published.disconnect(listener)


def item_ids(events: list[ItemAdded]) -> list[int]:
    return [event.item_id for event in events]


# Rows and their transaction -------------------------------------------------------------------


@transactional
def test_publish_writes_the_event_and_one_delivery_per_receiver_in_the_callers_transaction(
    receiver_registry: Registry,
) -> None:
    ran: list[str] = []

    @receiver(ItemAdded, name="unit.publishing.first")
    def first(event: ItemAdded) -> None:
        ran.append("first")

    @receiver(ItemAdded, name="unit.publishing.second")
    def second(event: ItemAdded) -> None:
        ran.append("second")

    with transaction.atomic():
        event_id = publish(ItemAdded(item_id=7, price=Decimal("9.99")))
        # Visible in the caller's transaction, not yet handed to anyone.
        row = OutboxEvent.objects.get()
        pending = list(Delivery.objects.order_by("receiver").values_list("receiver", "state"))
        assert ran == []

    assert row.id == event_id
    assert row.event_type == "unit_publishing.item_added"
    assert row.version == 1
    assert row.payload == {"item_id": 7, "price": "9.99"}
    assert pending == [
        ("unit.publishing.first", DeliveryState.PENDING),
        ("unit.publishing.second", DeliveryState.PENDING),
    ]
    assert ran == ["first", "second"]
    assert set(Delivery.objects.values_list("event_id", "state")) == {
        (event_id, DeliveryState.DELIVERED)
    }


@transactional
def test_rolled_back_transaction_leaves_no_rows_runs_no_receiver_and_sends_no_signal(
    added: list[ItemAdded], published_signals: list[dict[str, Any]]
) -> None:
    def place_order_then_fail() -> None:
        with transaction.atomic():
            Order.objects.create(total=Decimal("5.00"))
            publish(ItemAdded(item_id=1))
            raise Boom

    with pytest.raises(Boom):
        place_order_then_fail()

    assert not OutboxEvent.objects.exists()
    assert not Delivery.objects.exists()
    assert added == []
    assert published_signals == []


@transactional
def test_savepoint_rollback_drops_only_the_events_published_inside_it(
    added: list[ItemAdded],
) -> None:
    with transaction.atomic():
        before_id = publish(ItemAdded(item_id=1))
        with contextlib.suppress(Boom), transaction.atomic():
            publish(ItemAdded(item_id=2))
            raise Boom
        after_id = publish(ItemAdded(item_id=3))

    assert sorted(item_ids(added)) == [1, 3]
    assert set(OutboxEvent.objects.values_list("id", flat=True)) == {before_id, after_id}
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@transactional
@pytest.mark.parametrize("later_in_savepoint", [False, True], ids=["later-in-outer", "later-inner"])
def test_first_publish_in_a_rolled_back_savepoint_does_not_lose_later_publishes(
    added: list[ItemAdded], later_in_savepoint: bool
) -> None:
    # Django drops the on_commit hook registered inside the rolled back savepoint; the later
    # publish must register a hook of its own rather than join the dropped one.
    with transaction.atomic():
        with contextlib.suppress(Boom), transaction.atomic():
            publish(ItemAdded(item_id=1))
            raise Boom
        if later_in_savepoint:
            with transaction.atomic():
                later_id = publish(ItemAdded(item_id=2))
        else:
            later_id = publish(ItemAdded(item_id=2))
        assert added == []

    assert item_ids(added) == [2]
    assert list(OutboxEvent.objects.values_list("id", flat=True)) == [later_id]
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


@transactional
def test_nested_atomics_dispatch_everything_once_after_the_outermost_commit(
    added: list[ItemAdded],
) -> None:
    with transaction.atomic():
        publish(ItemAdded(item_id=1))
        with transaction.atomic():
            publish(ItemAdded(item_id=2))
            with transaction.atomic():
                publish(ItemAdded(item_id=3))
            assert added == []
        publish(ItemAdded(item_id=4))
        assert added == []

    assert sorted(item_ids(added)) == [1, 2, 3, 4]
    assert Delivery.objects.filter(state=DeliveryState.DELIVERED).count() == 4


@transactional
def test_outside_a_transaction_publish_commits_and_dispatches_at_once(
    added: list[ItemAdded],
) -> None:
    assert not connection.in_atomic_block

    event_id = publish(ItemAdded(item_id=5))

    assert item_ids(added) == [5]
    assert OutboxEvent.objects.get().id == event_id
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
    assert connection.get_autocommit()


@transactional
def test_an_event_without_receivers_is_still_recorded(receiver_registry: Registry) -> None:
    event_id = publish(ItemShipped(item_id=3))

    assert OutboxEvent.objects.get().id == event_id
    assert not Delivery.objects.exists()


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_using_writes_to_that_alias_and_dispatches_after_its_commit(
    added: list[ItemAdded],
) -> None:
    with transaction.atomic(using="other"):
        event_id = publish(ItemAdded(item_id=8), using="other")
        assert len(connections["other"].run_on_commit) == 1
        assert connections["default"].run_on_commit == []
        assert added == []

    assert item_ids(added) == [8]
    assert OutboxEvent.objects.using("other").get().id == event_id
    delivery = Delivery.objects.using("other").get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 1)
    assert not OutboxEvent.objects.using("default").exists()
    assert not Delivery.objects.using("default").exists()


@transactional
def test_one_on_commit_hook_per_transaction(added: list[ItemAdded]) -> None:
    with transaction.atomic():
        before = len(connection.run_on_commit)
        for item_id in range(10):
            publish(ItemAdded(item_id=item_id))
        publish_many([ItemAdded(item_id=10), ItemAdded(item_id=11)])
        assert len(connection.run_on_commit) == before + 1

    assert item_ids(added) == list(range(12))


# publish_many ---------------------------------------------------------------------------------


@transactional
@pytest.mark.parametrize("count", [2, 10, 40])
def test_publish_many_inserts_in_bulk(
    receiver_registry: Registry, django_assert_num_queries: Any, count: int
) -> None:
    for index in range(3):
        receiver(ItemAdded, name=f"unit.publishing.bulk_{index}")(lambda event: None)

    if count > 10 and connection.vendor != "postgresql":
        pytest.skip("past 999 parameters SQLite needs several INSERTs (tested below)")
    # One INSERT for the events and one for the deliveries, however many there are; on
    # PostgreSQL both in a single statement (WITH new_events AS (INSERT ...) INSERT ...), from
    # arrays when there are many.
    expected = ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "INSERT"]
    with transaction.atomic():
        with django_assert_num_queries(len(expected)) as captured:
            ids = publish_many([ItemAdded(item_id=i) for i in range(count)])
        statements = [query["sql"].split(None, 1)[0].upper() for query in captured]
        assert statements == expected

    assert len(ids) == count
    payload_by_id = dict(OutboxEvent.objects.values_list("id", "payload"))
    assert [payload_by_id[event_id]["item_id"] for event_id in ids] == list(range(count))
    assert Delivery.objects.filter(state=DeliveryState.DELIVERED).count() == 3 * count


@transactional
def test_publish_many_writes_every_row_when_the_insert_needs_several_statements(
    receiver_registry: Registry,
) -> None:
    # Enough rows to pass SQLite's 999-parameter limit, so the inserts are split.
    receiver(ItemAdded, name="unit.publishing.big_a", dispatcher="deferred")(lambda event: None)
    receiver(ItemAdded, name="unit.publishing.big_b", dispatcher="deferred")(lambda event: None)

    ids = publish_many([ItemAdded(item_id=i) for i in range(300)])

    assert len(set(ids)) == 300
    assert set(OutboxEvent.objects.values_list("id", flat=True)) == set(ids)
    per_event = Delivery.objects.values_list("event_id", flat=True)
    assert sorted(per_event) == sorted(ids * 2)
    payloads = dict(OutboxEvent.objects.values_list("id", "payload"))
    assert [payloads[event_id]["item_id"] for event_id in ids] == list(range(300))


AWKWARD_TEXT = ["NULL", "null", "", 'say "hi"', "back\\slash", "{a,b}", "(1, 2)", "é ✓ 🎉", " "]


def outbox_snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored column but ids and times, in a comparable order."""
    events = sorted(
        (
            row.event_type,
            repr(row.payload),
            row.version,
            row.correlation_id == str(row.id),
            row.causation_id,
            row.ordering_key,
            row.headers,
        )
        for row in OutboxEvent.objects.all()
    )
    deliveries = sorted(
        (
            row.event.event_type,
            repr(row.event.payload),
            row.receiver,
            row.dispatcher,
            row.queue,
            row.state,
            row.attempts,
            row.next_attempt_at == row.created_at,
            row.dispatched_at,
            row.task_id,
            row.last_error,
        )
        for row in Delivery.objects.select_related("event")
    )
    return events, deliveries


@transactional
def test_publish_many_stores_the_same_rows_however_many_it_writes_at_once(
    receiver_registry: Registry,
) -> None:
    # Large batches go in as one array per column on PostgreSQL; small ones as rows of
    # parameters. Both must store exactly the same values, awkward text included.
    receiver("unit.publishing.mixed_a", name="unit.publishing.mixed_1", dispatcher="deferred")(
        print
    )
    receiver(
        "unit.publishing.mixed_a", name="unit.publishing.mixed_2", dispatcher="deferred", queue="q"
    )(print)
    receiver("unit.publishing.mixed_b", name="unit.publishing.mixed_3", dispatcher="deferred")(
        print
    )
    events = [
        NamedEvent(
            "unit.publishing.mixed_a" if n % 3 else "unit.publishing.mixed_b",
            {"n": n, "text": AWKWARD_TEXT[n % len(AWKWARD_TEXT)], "list": [n, None, "NULL"]},
        )
        for n in range(45)
    ]

    publish_many(events)
    in_one_go = outbox_snapshot()
    Delivery.objects.all().delete()
    OutboxEvent.objects.all().delete()
    for start in range(0, len(events), 5):
        publish_many(events[start : start + 5])

    assert outbox_snapshot() == in_one_go
    assert len(in_one_go[0]) == 45
    assert len(in_one_go[1]) == 30 * 2 + 15


@transactional
def test_publish_many_validates_every_event_before_writing_any(
    added: list[ItemAdded],
) -> None:
    events = [
        ItemAdded(item_id=1),
        ItemAdded(item_id=2),
        ItemAdded(item_id=3, price=10.1),  # type: ignore[arg-type]
        ItemAdded(item_id=4),
    ]
    with transaction.atomic():
        hooks = len(connection.run_on_commit)
        with pytest.raises(PayloadError, match=r"ItemAdded\.price: Decimal expected"):
            publish_many(events)
        # The caller's transaction is untouched and can carry on.
        assert not transaction.get_rollback()
        assert len(connection.run_on_commit) == hooks
        Order.objects.create(total=Decimal("1.00"))

    assert not OutboxEvent.objects.exists()
    assert not Delivery.objects.exists()
    assert added == []
    assert Order.objects.count() == 1


@transactional
def test_publish_many_of_nothing_writes_nothing(added: list[ItemAdded]) -> None:
    with CaptureQueriesContext(connection) as captured:
        assert publish_many([]) == []

    assert len(captured) == 0
    assert not OutboxEvent.objects.exists()


# Correlation and causation --------------------------------------------------------------------


@transactional
def test_correlation_id_defaults_to_the_event_id(receiver_registry: Registry) -> None:
    first, second = publish_many([ItemShipped(item_id=1), ItemShipped(item_id=2)])
    single = publish(ItemShipped(item_id=3))

    correlation = dict(OutboxEvent.objects.values_list("id", "correlation_id"))
    assert correlation == {first: str(first), second: str(second), single: str(single)}
    assert not OutboxEvent.objects.filter(causation_id__isnull=False).exists()


@transactional
def test_given_correlation_id_is_stored(receiver_registry: Registry) -> None:
    single = publish(ItemShipped(item_id=1), correlation_id="request-1")
    many = publish_many([ItemShipped(item_id=2), ItemShipped(item_id=3)], correlation_id="job-9")

    correlation = dict(OutboxEvent.objects.values_list("id", "correlation_id"))
    assert correlation == {single: "request-1", many[0]: "job-9", many[1]: "job-9"}


@transactional
@pytest.mark.parametrize("given", [None, "checkout-77"])
def test_events_published_by_a_receiver_carry_correlation_and_causation(
    receiver_registry: Registry, given: str | None
) -> None:
    seen: list[Envelope] = []

    @receiver(ItemAdded, name="unit.publishing.ship")
    def ship(event: ItemAdded) -> None:
        publish(ItemShipped(item_id=event.item_id))

    @receiver(ItemShipped, name="unit.publishing.archive")
    def archive(event: ItemShipped, envelope: Envelope) -> None:
        seen.append(envelope)
        publish_many([ItemArchived(item_id=event.item_id)])

    @receiver(ItemArchived, name="unit.publishing.archived")
    def archived(event: ItemArchived, envelope: Envelope) -> None:
        seen.append(envelope)

    root_id = publish(ItemAdded(item_id=1), correlation_id=given)

    correlation = given or str(root_id)
    shipped = OutboxEvent.objects.get(event_type=ItemShipped.event_type)
    archived_row = OutboxEvent.objects.get(event_type=ItemArchived.event_type)
    assert (shipped.correlation_id, shipped.causation_id) == (correlation, root_id)
    assert (archived_row.correlation_id, archived_row.causation_id) == (correlation, shipped.id)
    assert [(envelope.correlation_id, envelope.causation_id) for envelope in seen] == [
        (correlation, root_id),
        (correlation, shipped.id),
    ]
    # Outside a receiver, nothing is inherited any more.
    assert current_envelope() is None
    later = publish(ItemShipped(item_id=2))
    assert OutboxEvent.objects.get(pk=later).causation_id is None


# Failures -------------------------------------------------------------------------------------


@transactional
def test_a_failed_insert_marks_the_callers_transaction_for_rollback(
    added: list[ItemAdded],
) -> None:
    delivery_table = Delivery._meta.db_table

    def refuse_delivery_inserts(
        execute: Any, sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if "INSERT" in sql.upper() and delivery_table in sql:
            raise DatabaseError("disk full")
        return execute(sql, params, many, context)

    with transaction.atomic():
        Order.objects.create(total=Decimal("3.00"))
        with (
            connection.execute_wrapper(refuse_delivery_inserts),
            pytest.raises(DatabaseError, match="disk full"),
        ):
            publish(ItemAdded(item_id=1))
        # The caller swallowed the error after the event row went in: the transaction must not
        # be allowed to commit that event without its deliveries.
        assert transaction.get_rollback()

    assert not OutboxEvent.objects.exists()
    assert not Order.objects.exists()
    assert added == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        pytest.param(
            (ItemAdded,), TypeError, r"publish\(ItemAdded\): pass an instance", id="class"
        ),
        pytest.param(
            ({"item_id": 1},),
            TypeError,
            r"takes a DomainEvent instance or an event type string, got dict",
            id="dict",
        ),
        pytest.param((42,), TypeError, r"got int 42", id="int"),
        pytest.param(
            (ItemAdded(item_id=1), {"item_id": 2}),
            TypeError,
            r"typed event carries its own fields",
            id="typed-with-payload",
        ),
        pytest.param(
            (NamedEvent(NAMED, {"a": 1}), {"a": 2}),
            TypeError,
            r"the NamedEvent has its payload",
            id="named-with-payload",
        ),
        pytest.param(
            (ItemAdded.event_type, {"item_id": 1}),
            PayloadError,
            r"'unit_publishing\.item_added' is the event type of ItemAdded; publish ItemAdded",
            id="type-string-of-a-class",
        ),
        pytest.param(("", {}), PayloadError, r"non-empty string", id="empty-type"),
        pytest.param(
            (NAMED, {"amount": Decimal("1.5")}),
            PayloadError,
            r"amount",
            id="named-payload-not-json",
        ),
        pytest.param(
            (ItemAdded(item_id=1, price=1.5),),  # type: ignore[arg-type]
            PayloadError,
            r"ItemAdded\.price: Decimal expected, got float 1\.5 — pass Decimal\('1\.5'\)",
            id="typed-field-mismatch",
        ),
    ],
)
def test_wrong_arguments_raise_a_clear_error_and_write_nothing(
    args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    hooks = len(connection.run_on_commit)

    with pytest.raises(error, match=message):
        publish(*args)

    assert not OutboxEvent.objects.exists()
    assert len(connection.run_on_commit) == hooks


# Named events and apublish --------------------------------------------------------------------


@transactional
def test_named_events_reach_receivers_as_their_payload_reads_back(
    receiver_registry: Registry,
) -> None:
    got: list[NamedEvent] = []
    receiver(NAMED, name="unit.publishing.named")(got.append)

    event_id = publish(NAMED, {"invoice_id": 7, "tags": ("a", "b"), "paid": None})

    assert got == [NamedEvent(NAMED, {"invoice_id": 7, "tags": ["a", "b"], "paid": None})]
    assert OutboxEvent.objects.get(pk=event_id).payload == got[0].payload


@transactional
def test_apublish_from_async_code(added: list[ItemAdded]) -> None:
    async def place_order() -> list[Any]:
        typed = await apublish(ItemAdded(item_id=11), correlation_id="async-request")
        named = await apublish(NAMED, {"order": 11})
        return [typed, named]

    typed_id, named_id = async_to_sync(place_order)()

    assert item_ids(added) == [11]
    rows = dict(OutboxEvent.objects.values_list("id", "correlation_id"))
    assert rows == {typed_id: "async-request", named_id: str(named_id)}
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


# Under Django's TestCase transaction, on_commit is emulated -----------------------------------


@pytest.mark.django_db
def test_in_a_test_transaction_dispatch_waits_for_the_captured_on_commit_hooks(
    added: list[ItemAdded], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        publish(ItemAdded(item_id=1))
        publish(ItemAdded(item_id=2))
        assert added == []

    # Under TestCase each publish registers its own hook (see the test below for why).
    assert len(callbacks) == 2
    assert item_ids(added) == [1, 2]
    assert Delivery.objects.filter(state=DeliveryState.DELIVERED).count() == 2


class PublishInTestCaseTests(TestCase):
    """Publishing inside ``django.test.TestCase``, where the test's transaction never commits."""

    def setUp(self) -> None:
        self.enterContext(registry.isolated())
        self.added: list[ItemAdded] = []
        receiver(ItemAdded, name="unit.publishing.testcase")(self.added.append)

    def test_nothing_is_dispatched_until_the_on_commit_hooks_run(self) -> None:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            publish(ItemAdded(item_id=1))

        assert len(callbacks) == 1
        assert self.added == []
        assert Delivery.objects.get().state == DeliveryState.PENDING

    def test_captured_hooks_skip_events_of_rolled_back_savepoints(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            with contextlib.suppress(Boom), transaction.atomic():
                publish(ItemAdded(item_id=1))
                raise Boom
            publish(ItemAdded(item_id=2))

        assert item_ids(self.added) == [2]
        assert OutboxEvent.objects.count() == 1


@transactional
def test_after_an_inner_block_is_released_the_outer_level_keeps_its_batch(
    added: list[ItemAdded],
) -> None:
    with transaction.atomic():
        with transaction.atomic():
            publish(ItemAdded(item_id=1))
        publish(ItemAdded(item_id=2))
        with transaction.atomic():
            publish(ItemAdded(item_id=3))
        # The released savepoint can no longer roll back alone, so one hook serves all three;
        # a publish inside a live savepoint of its own needs a hook that dies with it.
        assert len(connection.run_on_commit) == 2

    assert item_ids(added) == [1, 2, 3]


@transactional
def test_a_rolled_back_inner_block_after_a_released_one_loses_only_its_own_event(
    added: list[ItemAdded],
) -> None:
    with transaction.atomic():
        with transaction.atomic():
            publish(ItemAdded(item_id=1))
        try:
            with transaction.atomic():
                publish(ItemAdded(item_id=2))
                raise RuntimeError
        except RuntimeError:
            pass
        publish(ItemAdded(item_id=3))

    assert item_ids(added) == [1, 3]
    assert OutboxEvent.objects.count() == 2
