"""Cancelling owed deliveries: only owed ones, kept as cancelled, never run afterwards (not even
by a task already queued), an ordered one letting its line go on; the command and the metric."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings
from prometheus_client import CollectorRegistry

from django_domain_events import GiveUp, NamedEvent, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.delivery.runner import Outcome, run_delivery
from django_domain_events.models import SETTLED_STATES, Delivery, DeliveryState
from django_domain_events.observability import metrics
from django_domain_events.operations.cancelling import CancelResult, cancel_deliveries
from django_domain_events.operations.health import outbox_status
from tests.unit.recording import RECORDING, RecordingDispatcher

pytestmark = pytest.mark.django_db(transaction=True)

ASKED = "unit_cancelling.asked"
QUEUED = "unit_cancelling.queued"
ORDERED = "unit_cancelling.ordered"


@pytest.fixture
def runs(receiver_registry: Registry) -> list[tuple[str, Any]]:
    """``QUEUED``, handed to the recording dispatcher (dispatched, its task "in a queue"), and
    ``ORDERED``, an ordered sync receiver that gives up on ``{"give_up": True}``."""
    seen: list[tuple[str, Any]] = []

    @receiver(ASKED, name=QUEUED, dispatcher=RECORDING)
    def queued(event: NamedEvent) -> None:
        seen.append((QUEUED, event.payload))

    @receiver(ASKED, name=ORDERED, ordered=True)
    def ordered(event: NamedEvent) -> None:
        seen.append((ORDERED, event.payload))
        if event.payload.get("give_up"):
            raise GiveUp("no")

    return seen


def of(receiver_name: str, n: int) -> Delivery:
    return Delivery.objects.get(receiver=receiver_name, event__payload__n=n)


def test_cancelled_is_settled() -> None:
    assert DeliveryState.CANCELLED in SETTLED_STATES


def test_a_cancelled_dispatched_delivery_does_not_run_when_its_task_arrives(
    runs: list[Any],
) -> None:
    publish(ASKED, {"n": 1})
    queued = of(QUEUED, 1)
    [[sent]] = RecordingDispatcher.calls

    result = cancel_deliveries([queued])

    assert result.cancelled == [queued.pk]
    queued.refresh_from_db()
    assert (queued.state, queued.next_attempt_at) == (DeliveryState.CANCELLED, None)
    # The task carries what the dispatcher was handed; its worker runs it now.
    assert run_delivery(sent) is Outcome.SKIPPED
    assert (QUEUED, {"n": 1}) not in runs
    queued.refresh_from_db()
    assert queued.state == DeliveryState.CANCELLED


def test_only_owed_deliveries_are_cancelled_the_rest_are_counted_as_skipped(
    runs: list[Any],
) -> None:
    publish(ASKED, {"n": 1, "give_up": True})  # ORDERED's is dead, QUEUED's delivered below
    publish(ASKED, {"n": 2})  # ORDERED's is delivered, QUEUED's failed below
    publish(ASKED, {"n": 3}, delay=dt.timedelta(hours=1))  # both scheduled
    Delivery.objects.filter(receiver=QUEUED, event__payload__n=2).update(state=DeliveryState.FAILED)
    Delivery.objects.filter(receiver=QUEUED, event__payload__n=1).update(
        state=DeliveryState.DELIVERED
    )
    before = dict(Delivery.objects.values_list("pk", "state"))
    owed = [pk for pk, state in before.items() if state not in SETTLED_STATES]

    result = cancel_deliveries(Delivery.objects.all())

    assert sorted(result.cancelled) == sorted(owed)
    assert result.skipped == len(before) - len(owed) == 3
    after = dict(Delivery.objects.values_list("pk", "state"))
    for pk, state in before.items():
        assert after[pk] == (DeliveryState.CANCELLED if pk in owed else state)

    again = cancel_deliveries(Delivery.objects.all())
    assert again == CancelResult(cancelled=[], skipped=len(before), released=0)


def test_a_cancelled_scheduled_delivery_is_not_run_by_the_relay(runs: list[Any]) -> None:
    publish(ASKED, {"n": 1}, delay=dt.timedelta(hours=1))
    cancel_deliveries(Delivery.objects.all())
    Delivery.objects.update(next_attempt_at=None)

    assert Relay().run_pass().claimed == 0
    assert runs == []


def test_cancelling_the_head_of_an_ordered_line_lets_the_next_one_go_after_commit(
    runs: list[Any],
) -> None:
    publish(ASKED, {"n": 1}, ordering_key="k", delay=dt.timedelta(hours=1))
    publish(ASKED, {"n": 2}, ordering_key="k")
    assert of(ORDERED, 2).state == DeliveryState.WAITING

    with transaction.atomic():
        result = cancel_deliveries([of(ORDERED, 1)])
        assert result.released == 1
        assert (ORDERED, {"n": 2}) not in runs

    assert (ORDERED, {"n": 2}) in runs
    head = of(ORDERED, 1)
    assert (head.state, head.ordering_key) == (DeliveryState.CANCELLED, "")
    assert head.ordering_seq == 1
    assert of(ORDERED, 2).state == DeliveryState.DELIVERED


def test_a_rolled_back_cancel_changes_nothing(runs: list[Any]) -> None:
    publish(ASKED, {"n": 1}, delay=dt.timedelta(hours=1))

    with transaction.atomic():
        cancel_deliveries(Delivery.objects.all())
        transaction.set_rollback(True)

    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SCHEDULED}


def test_status_counts_cancelled_and_scheduled_deliveries(runs: list[Any]) -> None:
    publish(ASKED, {"n": 1}, delay=dt.timedelta(hours=1))
    cancel_deliveries([of(QUEUED, 1)])

    status = outbox_status()

    assert status.by_state[DeliveryState.CANCELLED] == 1
    assert status.by_state[DeliveryState.SCHEDULED] == 1
    assert status.owed == 0
    Delivery.objects.filter(state=DeliveryState.SCHEDULED).update(
        next_attempt_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    assert outbox_status().owed == 1


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    with metrics.use_registry(CollectorRegistry()) as fresh:
        yield fresh


@override_settings(DOMAIN_EVENTS={"METRICS": True})
def test_cancelled_deliveries_are_counted_by_receiver(
    runs: list[Any], registry: CollectorRegistry
) -> None:
    publish(ASKED, {"n": 1}, delay=dt.timedelta(hours=1))
    publish(ASKED, {"n": 2}, delay=dt.timedelta(hours=1))

    cancel_deliveries(Delivery.objects.filter(receiver=QUEUED))

    name = "domain_events_deliveries_cancelled_total"
    assert registry.get_sample_value(name, {"receiver": QUEUED}) == 2
    assert registry.get_sample_value(name, {"receiver": ORDERED}) is None


# The command --------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("cancel_deliveries", *args, stdout=out)
    return out.getvalue()


def test_the_command_cancels_the_selected_owed_deliveries(runs: list[Any]) -> None:
    publish(ASKED, {"n": 1}, delay=dt.timedelta(hours=1))
    publish(ASKED, {"n": 2}, delay=dt.timedelta(hours=1))

    assert run("--receiver", QUEUED, "--dry-run") == "Dry run: 2 deliveries would be cancelled.\n"
    assert not Delivery.objects.filter(state=DeliveryState.CANCELLED).exists()

    output = run("--receiver", QUEUED, "--state", "scheduled")

    assert "Cancelled 2 deliveries" in output
    assert dict(Delivery.objects.values_list("receiver", "state").distinct()) == {
        QUEUED: DeliveryState.CANCELLED,
        ORDERED: DeliveryState.SCHEDULED,
    }


def test_the_command_by_id_and_all(runs: list[Any]) -> None:
    publish(ASKED, {"n": 1}, delay=dt.timedelta(hours=1))

    run("--id", str(of(QUEUED, 1).pk))
    assert of(QUEUED, 1).state == DeliveryState.CANCELLED
    assert of(ORDERED, 1).state == DeliveryState.SCHEDULED

    run("--all")
    assert of(ORDERED, 1).state == DeliveryState.CANCELLED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Select the deliveries to cancel with --id"),
        (("--id", "nope"), "--id 'nope' is not an id (a UUID)."),
    ],
)
def test_the_command_refuses_a_missing_or_bad_selection(
    runs: list[Any], args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        run(*args)

    assert message in str(raised.value)


def test_the_command_refuses_a_settled_state(runs: list[Any]) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'delivered'"):
        run("--all", "--state", "delivered")
