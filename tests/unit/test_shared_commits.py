"""Deliveries that share a commit: the relay runs a group of ``shares_commit=True`` deliveries in
one transaction, and a group that fails is rolled back and run again one by one."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_domain_events import Envelope, NamedEvent, publish, receiver, signals, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

TICKED = "shared_unit.ticked"
FAILS_ON = "fails"


def publish_owed(count: int, event_type: str = TICKED, **payload: Any) -> list[uuid.UUID]:
    """Publish ``count`` events whose deliveries are left to the relay."""
    with use_dispatcher("deferred"):
        return [publish(event_type, {"n": n, **payload}) for n in range(count)]


def record_effect(event: NamedEvent, envelope: Envelope) -> None:
    if event.payload.get(FAILS_ON) == event.payload["n"]:
        raise RuntimeError(f"receiver failed on {event.payload['n']}")
    Effect.objects.create(
        receiver=envelope.receiver, event_id=envelope.event_id, attempt=envelope.attempt
    )


@pytest.fixture
def sharing(receiver_registry: Registry) -> Registry:
    """One receiver of ``TICKED`` that shares commits and records an Effect per run."""
    receiver(TICKED, name="shared_unit.record", shares_commit=True)(record_effect)
    return receiver_registry


def delivered_marks(queries: CaptureQueriesContext) -> int:
    """The statements that marked deliveries delivered (the relay's claims mark them
    dispatched)."""
    table = Delivery._meta.db_table
    return sum(
        1
        for query in queries.captured_queries
        if query["sql"].lstrip().upper().startswith("UPDATE")
        and table in query["sql"]
        and f"'{DeliveryState.DELIVERED}'" in query["sql"]
    )


def effect_counts() -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for event_id in Effect.objects.values_list("event_id", flat=True):
        counts[event_id] = counts.get(event_id, 0) + 1
    return counts


def test_a_group_is_claimed_in_one_update_and_each_receiver_runs_once(sharing: Registry) -> None:
    event_ids = publish_owed(7)

    with CaptureQueriesContext(connection) as queries:
        totals = Relay(grace=0).run_pass()

    assert (totals.claimed, totals.delivered, totals.failed) == (7, 7, 0)
    assert effect_counts() == dict.fromkeys(event_ids, 1)
    # One UPDATE marked the whole group delivered.
    assert delivered_marks(queries) == 1
    rows = Delivery.objects.all()
    assert {(row.state, row.attempts, row.claimed_by) for row in rows} == {
        (DeliveryState.DELIVERED, 1, "")
    }
    assert all(row.delivered_at is not None for row in rows)


def test_shared_commit_size_bounds_a_group(sharing: Registry) -> None:
    publish_owed(7)

    with (
        override_settings(DOMAIN_EVENTS={"SHARED_COMMIT_SIZE": 3}),
        CaptureQueriesContext(connection) as queries,
    ):
        totals = Relay(grace=0).run_pass()

    assert totals.delivered == 7
    # Groups of 3 and 3, and the last one alone.
    assert delivered_marks(queries) == 3


def test_a_receiver_that_does_not_share_commits_settles_each_on_its_own(
    receiver_registry: Registry,
) -> None:
    receiver(TICKED, name="shared_unit.alone")(record_effect)
    event_ids = publish_owed(4)

    with CaptureQueriesContext(connection) as queries:
        totals = Relay(grace=0).run_pass()

    assert totals.delivered == 4
    assert effect_counts() == dict.fromkeys(event_ids, 1)
    assert delivered_marks(queries) == 4


def test_a_failure_rolls_the_group_back_and_each_runs_again_alone(sharing: Registry) -> None:
    event_ids = publish_owed(5, fails=2)
    failing = event_ids[2]

    totals = Relay(grace=0).run_pass()

    assert (totals.delivered, totals.failed) == (4, 1)
    # No effect twice: the group's effects were rolled back with its marks, then each ran once.
    assert effect_counts() == {event_id: 1 for event_id in event_ids if event_id != failing}
    failed = Delivery.objects.get(event_id=failing)
    assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 1)
    assert "receiver failed on 2" in failed.last_error
    assert set(Effect.objects.values_list("attempt", flat=True)) == {1}


def test_a_delivery_settled_by_another_copy_sends_the_group_back_to_single_runs(
    sharing: Registry,
) -> None:
    event_ids = publish_owed(3)
    taken = Delivery.objects.get(event_id=event_ids[1])

    def settle_one_first(**kwargs: Any) -> None:
        # Between the relay's claim and its group's run, another copy delivers one of them.
        Delivery.objects.filter(pk=taken.pk).update(state=DeliveryState.DELIVERED)

    relay = Relay(grace=0)
    claimed = relay.claim_batch()
    settle_one_first()
    totals = relay.hand_over(claimed)

    assert (totals.delivered, totals.skipped) == (2, 1)
    assert effect_counts() == {event_ids[0]: 1, event_ids[2]: 1}


def test_ordered_and_async_receivers_never_share_a_commit(receiver_registry: Registry) -> None:
    receiver(TICKED, name="shared_unit.ordered", ordered=True, shares_commit=True)(record_effect)

    @receiver(TICKED, name="shared_unit.async", shares_commit=True)
    async def record_async(event: NamedEvent, envelope: Envelope) -> None:
        await Effect.arecord("shared_unit.async", envelope)

    with use_dispatcher("deferred"):
        for n in range(3):
            publish(TICKED, {"n": n}, ordering_key="one-key")

    delivered = 0
    with CaptureQueriesContext(connection) as queries:
        # An ordered line is claimed one delivery at a time: a pass per delivery in line.
        for _ in range(3):
            delivered += Relay(grace=0).run_pass().delivered

    assert delivered == 6
    assert Effect.objects.count() == 6
    # Each delivery settled by an UPDATE of its own.
    assert delivered_marks(queries) == 6


def test_delivery_succeeded_is_sent_after_the_group_commits(sharing: Registry) -> None:
    publish_owed(3)
    seen: list[tuple[bool, str]] = []

    def told(sender: object, envelope: Envelope, **kwargs: Any) -> None:
        row = Delivery.objects.get(pk=envelope.delivery_id)
        seen.append((connection.in_atomic_block, row.state))

    signals.delivery_succeeded.connect(told)
    try:
        Relay(grace=0).run_pass()
    finally:
        signals.delivery_succeeded.disconnect(told)

    assert seen == [(False, DeliveryState.DELIVERED)] * 3


def test_shares_commit_must_be_a_bool(receiver_registry: Registry) -> None:
    with pytest.raises(ValueError, match=r"shares_commit='yes'.*True or False"):
        receiver(TICKED, shares_commit="yes")(record_effect)  # type: ignore[arg-type]
