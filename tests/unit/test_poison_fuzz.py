"""Property-based: random payloads and identifiers at publish, random changes to stored rows
before a relay pass. Publish either stores an event that reads back equal or raises
``PayloadError`` having written nothing; a relay pass over any changed rows ends with every
delivery settled: delivered if its row still holds a deliverable event, else dead."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_domain_events import (
    Envelope,
    NamedEvent,
    PayloadError,
    publish,
    receiver,
    use_dispatcher,
)
from django_domain_events.declaration.payload_types import MAX_PAYLOAD_DEPTH
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.stored_rows import STORABLE_DEPTH, change_event, nested_json
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

# The same examples on every run, so a run of the test command never fails on a case the run
# before it did not try; a failure found while changing the code is fixed with a test of its own.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TICKED = "poison_fuzz.ticked"
OTHER = "poison_fuzz.other"

# Text that is sometimes bad for a column or JSON: NUL, lone surrogates, long.
awkward_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(["a", "\x00", "\udc80", "é", "\U0001f600"]), max_size=8),
    st.integers(min_value=250, max_value=260).map(lambda n: "k" * n),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    awkward_text,
    # Not JSON: publish must refuse them.
    st.sampled_from([b"bytes", {1, 2}, object()]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(awkward_text, st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)


def deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


payloads = st.one_of(
    st.dictionaries(awkward_text, values, max_size=5),
    st.integers(min_value=1, max_value=2_000).map(deep),
    values,  # often not a dict at all
)


def as_read_back(value: Any) -> Any:
    """``value`` as JSON gives it back: tuples become lists."""
    if isinstance(value, list | tuple):
        return [as_read_back(item) for item in value]
    if isinstance(value, dict):
        return {key: as_read_back(item) for key, item in value.items()}
    return value


@FUZZ
@given(
    payload=payloads,
    event_type=awkward_text,
    ordering_key=st.one_of(st.none(), awkward_text, st.integers(min_value=0)),
    correlation_id=st.one_of(st.none(), awkward_text, st.integers()),
)
def test_publish_stores_an_equal_event_or_refuses_it_writing_nothing(
    payload: Any, event_type: str, ordering_key: Any, correlation_id: Any
) -> None:
    OutboxEvent.objects.all().delete()
    try:
        event_id = publish(
            event_type, payload, ordering_key=ordering_key, correlation_id=correlation_id
        )
    except PayloadError:
        assert not OutboxEvent.objects.exists()
        return
    row = OutboxEvent.objects.get(pk=event_id)
    assert row.event_type == event_type
    # No payload (None) is an empty one.
    assert row.payload == ({} if payload is None else as_read_back(payload))
    assert row.ordering_key == ("" if ordering_key is None else str(ordering_key))
    assert row.correlation_id == (correlation_id or str(event_id))


# Stored rows changed behind the app's back ---------------------------------------------------


def undeliverable(change: dict[str, Any]) -> bool:
    """Whether the change leaves a delivery of ``TICKED`` nothing that can be delivered: its
    payload not an object or nested past the limit, or its event of another type. Changed
    headers and versions of a named event do not matter."""
    payload = change.get("payload", "{}")
    if not payload.startswith("{"):
        return True
    if payload.count("{") > MAX_PAYLOAD_DEPTH:
        return True
    return "event_type" in change


stored_payloads = st.one_of(
    st.just('{"n": 1}'),
    # Around the nesting limit, and near what the JSON decoder can read at all, as deep as the
    # database stores.
    st.integers(min_value=1, max_value=STORABLE_DEPTH or MAX_PAYLOAD_DEPTH + 5).map(nested_json),
    *([] if STORABLE_DEPTH else [st.integers(min_value=900, max_value=995).map(nested_json)]),
    st.sampled_from(['"text"', "[1, 2]", "17", "null", "true", "{}", '{"n": {"m": []}}']),
)
tamperings = st.fixed_dictionaries(
    {},
    optional={
        "payload": stored_payloads,
        "headers": stored_payloads,
        "event_type": st.sampled_from([OTHER, "poison_fuzz.nobody", "x" * 255]),
        "version": st.integers(min_value=0, max_value=2**31 - 1),
    },
)


@pytest.fixture
def recorded(receiver_registry: Registry) -> Registry:
    @receiver(TICKED, name="poison_fuzz.record")
    def record(event: NamedEvent, envelope: Envelope) -> None:
        Effect.objects.create(
            receiver="poison_fuzz.record", event_id=envelope.event_id, attempt=envelope.attempt
        )

    @receiver(OTHER, name="poison_fuzz.other")
    def other(event: NamedEvent) -> None:
        pass

    return receiver_registry


@FUZZ
@given(changes=st.lists(tamperings, min_size=1, max_size=4))
def test_a_relay_pass_over_changed_rows_settles_every_delivery(
    recorded: Registry, changes: list[dict[str, Any]]
) -> None:
    OutboxEvent.objects.all().delete()
    Effect.objects.all().delete()
    with use_dispatcher("deferred"):
        event_ids = [publish(TICKED, {"n": n}) for n in range(len(changes))]
    hour_ago = timezone.now() - dt.timedelta(hours=1)
    Delivery.objects.update(created_at=hour_ago, next_attempt_at=hour_ago)
    for event_id, change in zip(event_ids, changes, strict=True):
        change_event(event_id, **change)

    totals = Relay().run_pass()

    assert totals.errors == 0
    assert totals.claimed == len(event_ids)
    found = dict(Delivery.objects.values_list("event_id", "state"))
    errors = dict(Delivery.objects.values_list("event_id", "last_error"))
    for event_id, change in zip(event_ids, changes, strict=True):
        wanted = DeliveryState.DEAD if undeliverable(change) else DeliveryState.DELIVERED
        assert found[event_id] == wanted, (change, errors[event_id])
    assert Effect.objects.count() == list(found.values()).count(DeliveryState.DELIVERED)
