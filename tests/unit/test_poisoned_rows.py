"""Bad input and changed rows: payloads nested too deeply, identifiers the columns cannot hold,
stored rows changed after publish. Publish refuses the first two before any SQL; a stored row,
whatever it holds, never takes down a relay batch or loops: its delivery goes dead, saying why."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from django_domain_events import (
    DomainEvent,
    Envelope,
    EventDefinitionError,
    NamedEvent,
    PayloadError,
    publish,
    receiver,
    use_dispatcher,
)
from django_domain_events.declaration.codec import UnreadableJSON
from django_domain_events.declaration.payload_types import MARIADB_PAYLOAD_DEPTH, MAX_PAYLOAD_DEPTH
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.loading import load_delivery
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.health import outbox_status
from tests.stored_rows import (
    ON_MARIADB,
    STORABLE_DEPTH,
    change_event,
    nested_json,
    stores_any_depth,
)
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

TICKED = "poison_unit.ticked"
OTHER = "poison_unit.other"


def nested(depth: int) -> dict[str, Any]:
    """A dict ``depth`` levels deep: {"a": {"a": ... {"a": 1}}}, built without recursion."""
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.fixture
def recorded(receiver_registry: Registry) -> Registry:
    """A registry with one receiver of ``TICKED`` and one of ``OTHER``, each recording an
    Effect per run."""

    @receiver(TICKED, name="poison_unit.record")
    def record(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(
            receiver="poison_unit.record", event_id=envelope.event_id, attempt=envelope.attempt
        )

    @receiver(OTHER, name="poison_unit.other")
    def other(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(
            receiver="poison_unit.other", event_id=envelope.event_id, attempt=envelope.attempt
        )

    return receiver_registry


def publish_deferred(count: int, event_type: str = TICKED) -> list[uuid.UUID]:
    with use_dispatcher("deferred"):
        ids = [publish(event_type, {"n": n}) for n in range(count)]
    hour_ago = timezone.now() - dt.timedelta(hours=1)
    Delivery.objects.update(created_at=hour_ago, next_attempt_at=hour_ago)
    return ids


def states() -> dict[uuid.UUID, tuple[str, str]]:
    return {
        event_id: (state, error)
        for event_id, state, error in Delivery.objects.values_list(
            "event_id", "state", "last_error"
        )
    }


# Nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 990, 5_000, 100_000])
def test_publish_refuses_a_payload_nested_past_the_limit_naming_the_path(depth: int) -> None:
    with pytest.raises(PayloadError) as raised:
        publish(TICKED, nested(depth))

    message = str(raised.value)
    path = "['a']" * MAX_PAYLOAD_DEPTH
    assert message.startswith(f"{TICKED} payload{path}: nested more than {MAX_PAYLOAD_DEPTH}")
    assert "MAX_PAYLOAD_DEPTH" in message
    assert not OutboxEvent.objects.exists()


def test_a_payload_as_deep_as_the_limit_reads_back_equal(recorded: Registry) -> None:
    payload = nested(STORABLE_DEPTH or MAX_PAYLOAD_DEPTH)
    [event_id] = [publish(TICKED, payload)]

    assert OutboxEvent.objects.get(pk=event_id).payload == payload


def test_on_mariadb_publish_refuses_what_its_json_columns_cannot_store(recorded: Registry) -> None:
    # Past MariaDB's own limit, the database would refuse the whole transaction with a bare
    # "CONSTRAINT failed"; publish names the path and the limit first. Elsewhere it is stored.
    deeper = nested(MARIADB_PAYLOAD_DEPTH + 1)
    if not ON_MARIADB:
        event_id = publish(TICKED, deeper)
        assert OutboxEvent.objects.get(pk=event_id).payload == deeper
        return
    with pytest.raises(PayloadError) as raised:
        publish(TICKED, deeper)

    path = "['a']" * MARIADB_PAYLOAD_DEPTH
    assert str(raised.value).startswith(
        f"{TICKED} payload{path}: nested more than {MARIADB_PAYLOAD_DEPTH} levels deep"
    )
    assert not OutboxEvent.objects.exists()


def test_a_list_holding_itself_is_refused_not_looped_over() -> None:
    looped: list[Any] = []
    looped.append(looped)

    with pytest.raises(PayloadError, match="nested more than"):
        publish(TICKED, {"loop": looped})


# Stored rows nested too deeply -------------------------------------------------------------


@stores_any_depth
def test_the_relay_buries_a_too_deep_row_and_delivers_the_rest(recorded: Registry) -> None:
    good_one, poisoned, good_two = publish_deferred(3)
    change_event(poisoned, payload=nested_json(990))

    totals = Relay().run_pass()

    assert (totals.claimed, totals.delivered, totals.dead, totals.errors) == (3, 2, 1, 0)
    found = states()
    assert found[good_one][0] == found[good_two][0] == DeliveryState.DELIVERED
    state, error = found[poisoned]
    assert state == DeliveryState.DEAD
    assert "nested too deeply" in error or "nested more than" in error
    assert sorted(Effect.objects.values_list("event_id", flat=True)) == sorted([good_one, good_two])


@stores_any_depth
@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 990])
def test_loading_a_too_deep_delivery_reports_why(recorded: Registry, depth: int) -> None:
    [poisoned] = publish_deferred(1)
    change_event(poisoned, payload=nested_json(depth))
    delivery = Delivery.objects.get()

    loaded = load_delivery(delivery.pk, "default")

    assert loaded is not None
    assert loaded.owed.event is None
    assert "nested" in str(loaded.error)


@stores_any_depth
def test_a_too_deep_event_can_be_listed_and_deleted(recorded: Registry) -> None:
    [poisoned] = publish_deferred(1)
    change_event(poisoned, payload=nested_json(990))

    row = OutboxEvent.objects.get(pk=poisoned)
    assert isinstance(row.payload, UnreadableJSON)
    OutboxEvent.objects.filter(pk=poisoned).delete()

    assert not OutboxEvent.objects.exists()
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("text", ['"just a string"', "[1, 2]", "17", "null"])
def test_a_stored_payload_that_is_not_an_object_goes_dead(recorded: Registry, text: str) -> None:
    good, poisoned = publish_deferred(2)
    change_event(poisoned, payload=text)

    Relay().run_pass()

    found = states()
    assert found[good][0] == DeliveryState.DELIVERED
    assert found[poisoned][0] == DeliveryState.DEAD
    assert "not a JSON object" in found[poisoned][1]


# Changed event types and states ------------------------------------------------------------


def test_a_delivery_whose_event_type_was_changed_goes_dead_without_running(
    recorded: Registry,
) -> None:
    good, changed, unknown = publish_deferred(3)
    OutboxEvent.objects.filter(pk=changed).update(event_type=OTHER)
    OutboxEvent.objects.filter(pk=unknown).update(event_type="poison_unit.nobody")

    totals = Relay().run_pass()

    assert (totals.delivered, totals.dead) == (1, 2)
    found = states()
    assert found[good][0] == DeliveryState.DELIVERED
    for event_id, event_type in ((changed, OTHER), (unknown, "poison_unit.nobody")):
        state, error = found[event_id]
        assert state == DeliveryState.DEAD
        assert f"does not take {event_type!r} events" in error
    assert list(Effect.objects.values_list("event_id", flat=True)) == [good]
    assert Delivery.objects.get(event_id=changed).attempts == 1


# Identifiers -------------------------------------------------------------------------------

BAD_IDENTIFIERS = [
    pytest.param("a\x00b", "holds a NUL character", id="nul"),
    pytest.param("a\udc80b", "holds a lone surrogate", id="surrogate"),
    pytest.param("k" * 256, "is 256 characters long; the longest allowed is 255", id="long"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_IDENTIFIERS)
@pytest.mark.parametrize(
    ("argument", "named"),
    [
        ("event_type", "The event type (event_type)"),
        ("ordering_key", f"The ordering key (ordering_key) of a {TICKED!r} event"),
        ("correlation_id", "correlation_id"),
    ],
)
def test_publish_refuses_an_identifier_its_column_cannot_hold_before_any_sql(
    django_assert_num_queries: Any, argument: str, named: str, value: str, problem: str
) -> None:
    kwargs: dict[str, Any] = {} if argument == "event_type" else {argument: value}
    event_type = value if argument == "event_type" else TICKED

    with django_assert_num_queries(0), pytest.raises(PayloadError) as raised:
        publish(event_type, {"n": 1}, **kwargs)

    assert str(raised.value).startswith(f"{named} {problem}")
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize("value", [17, uuid.UUID(int=1), b"bytes"])
def test_publish_refuses_a_correlation_id_that_is_not_a_string(value: Any) -> None:
    with pytest.raises(PayloadError, match=r"^correlation_id is .*; it must be a string"):
        publish(TICKED, {"n": 1}, correlation_id=value)

    assert not OutboxEvent.objects.exists()


def test_identifiers_as_long_as_the_columns_are_stored_whole() -> None:
    longest = "é" * 255

    event_id = publish(longest, {"n": 1}, ordering_key=longest, correlation_id=longest)

    row = OutboxEvent.objects.get(pk=event_id)
    assert (row.event_type, row.ordering_key, row.correlation_id) == (longest,) * 3


@pytest.mark.parametrize(("value", "problem"), BAD_IDENTIFIERS)
def test_an_event_class_whose_type_its_column_cannot_hold_is_a_definition_error(
    value: str, problem: str
) -> None:
    with pytest.raises(EventDefinitionError, match=rf"<locals>\.Bad\.event_type {problem}"):

        @dataclass(frozen=True)
        class Bad(DomainEvent, abstract=True):
            event_type = value


# Undefined delivery states -----------------------------------------------------------------


def test_the_database_refuses_a_state_the_outbox_does_not_define(recorded: Registry) -> None:
    publish_deferred(1)

    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.update(state="bogus")

    assert Delivery.objects.get().state == DeliveryState.PENDING


@contextmanager
def without_state_check() -> Iterator[None]:
    """A transaction, rolled back at the end, in which the database does not check states:
    a database without the check constraint (one migrated by hand, say)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                table = connection.ops.quote_name(Delivery._meta.db_table)
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT dde_delivery_state_valid")
            elif connection.vendor == "mysql":
                # MariaDB: DDL would commit the transaction, so the session stops checking.
                cursor.execute("SET SESSION check_constraint_checks = OFF")
            else:
                cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            yield
        finally:
            if connection.vendor != "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SET SESSION check_constraint_checks = ON"
                        if connection.vendor == "mysql"
                        else "PRAGMA ignore_check_constraints = OFF"
                    )
            transaction.set_rollback(True)


def test_events_status_reports_deliveries_in_an_undefined_state(recorded: Registry) -> None:
    publish_deferred(3)

    with without_state_check():
        two = list(Delivery.objects.values_list("pk", flat=True)[:2])
        Delivery.objects.filter(pk__in=two).update(state="bogus")
        status = outbox_status()
        out = io.StringIO()
        with pytest.raises(CommandError) as raised:
            call_command("events_status", stdout=out)

    assert status.undefined_states == {"bogus": 2}
    assert status.by_state[DeliveryState.PENDING] == 1
    assert "bogus" not in status.by_state
    assert "deliveries in a state the outbox does not define (2 'bogus')" in str(raised.value)
