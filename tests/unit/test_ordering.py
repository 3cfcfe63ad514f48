"""Per-key ordering: ordered receivers get one key's deliveries one at a time, in publish order,
across failures, retries, dead letters, replays and the relay; nothing else is held back."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events import (
    DomainEvent,
    Envelope,
    GiveUp,
    NamedEvent,
    PayloadError,
    publish,
    publish_many,
    receiver,
)
from django_domain_events.checks import check_event_classes
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.ordering import blocked_lines, count_blocked, skip_dead
from django_domain_events.delivery.relay import Relay
from django_domain_events.delivery.runner import hand_over_released
from django_domain_events.models import Delivery, DeliveryState, OrderingKey
from django_domain_events.operations.redelivery import replay_events, retry_deliveries
from tests.testapp.models import Effect
from tests.unit.recording import RECORDING, RecordingDispatcher

pytestmark = pytest.mark.django_db(transaction=True)

STEP = "unit_ordering.step"


class Script:
    """Which runs of the ordered receiver fail: ``fail[(key, n)]`` failures left for event n."""

    def __init__(self) -> None:
        self.fail: dict[tuple[str, int], int] = {}
        self.give_up: set[tuple[str, int]] = set()


@pytest.fixture
def script() -> Script:
    return Script()


def _record(name: str, event: NamedEvent, envelope: Envelope) -> None:
    Effect.objects.create(
        receiver=f"{name}:{envelope.ordering_key}:{event.payload['n']}",
        event_id=envelope.event_id,
        attempt=envelope.attempt,
    )


@pytest.fixture
def lines(receiver_registry: Registry, script: Script) -> Registry:
    """An ordered receiver of ``STEP`` that fails as ``script`` says, and an unordered one."""

    @receiver(STEP, name="ordered", ordered=True)
    def ordered(event: NamedEvent, envelope: Envelope) -> None:
        spot = (event.payload["key"], event.payload["n"])
        if spot in script.give_up:
            raise GiveUp("not this one")
        if script.fail.get(spot, 0) > 0:
            script.fail[spot] -= 1
            raise RuntimeError(f"step {spot} fails")
        _record("ordered", event, envelope)

    @receiver(STEP, name="unordered")
    def unordered(event: NamedEvent, envelope: Envelope) -> None:
        _record("unordered", event, envelope)

    return receiver_registry


def step(key: str, n: int, **options: Any) -> uuid.UUID:
    return publish(STEP, {"n": n, "key": key}, ordering_key=key, **options)


def effects(name: str = "ordered") -> list[str]:
    return list(
        Effect.objects.filter(receiver__startswith=f"{name}:")
        .order_by("pk")
        .values_list("receiver", flat=True)
    )


def states(name: str = "ordered", key: str = "a") -> list[str]:
    rows = Delivery.objects.filter(receiver=name, event__ordering_key=key)
    return list(rows.order_by("ordering_seq", "created_at").values_list("state", flat=True))


def retry_now() -> None:
    """Make every failed delivery due now, as if its backoff had passed, and run a relay pass."""
    Delivery.objects.filter(state=DeliveryState.FAILED).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    Relay().run_pass()


# Declaring keys ---------------------------------------------------------------------------------


def test_a_class_names_the_field_holding_its_key(
    receiver_registry: Registry, disposable_classes: None
) -> None:
    @dataclass(frozen=True)
    class Shipped(DomainEvent):
        event_type = "unit_ordering.shipped"
        ordering_key = "order_id"

        order_id: int

    @receiver(Shipped, name="ship", ordered=True)
    def ship(event: Shipped) -> None: ...

    publish(Shipped(order_id=42))

    row = Delivery.objects.get()
    assert (row.event.ordering_key, row.ordering_key, row.ordering_seq) == ("42", "42", 1)


def test_a_method_can_compute_the_key_and_publish_can_replace_it(
    receiver_registry: Registry, disposable_classes: None
) -> None:
    @dataclass(frozen=True)
    class Paid(DomainEvent):
        event_type = "unit_ordering.paid"

        order_id: int

        def ordering_key(self) -> str:
            return f"order:{self.order_id}"

    @receiver(Paid, name="pay", ordered=True)
    def pay(event: Paid) -> None: ...

    publish(Paid(order_id=7))
    publish(Paid(order_id=7), ordering_key="custom")

    keys = Delivery.objects.order_by("created_at").values_list("ordering_key", flat=True)
    assert list(keys) == ["order:7", "custom"]


def test_bad_keys_are_refused_at_publish_before_anything_is_written(lines: Registry) -> None:
    with pytest.raises(PayloadError, match="must be a string"):
        publish(STEP, {"n": 1}, ordering_key=1.5)  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="the longest allowed is 255"):
        step("k" * 256, 1)
    assert not Delivery.objects.exists()


def test_a_key_naming_no_field_is_a_startup_error(disposable_classes: None) -> None:
    @dataclass(frozen=True)
    class Misnamed(DomainEvent):
        event_type = "unit_ordering.misnamed"
        ordering_key = "order"

        order_id: int

    found = [m for m in check_event_classes() if m.id == "django_domain_events.E015"]

    assert len(found) == 1
    assert "Misnamed.ordering_key = 'order' names no field" in found[0].msg
    with pytest.raises(PayloadError, match="names no field"):
        publish(Misnamed(order_id=1))


def test_unordered_receivers_pay_nothing(receiver_registry: Registry) -> None:
    @receiver(STEP, name="plain")
    def plain(event: NamedEvent) -> None: ...

    step("a", 1)
    step("a", 2)

    assert (
        list(Delivery.objects.values_list("state", "ordering_key", "ordering_seq"))
        == [(DeliveryState.DELIVERED, "", None)] * 2
    )
    assert not OrderingKey.objects.exists()


@override_settings(DOMAIN_EVENTS={"ORDERED_RECEIVERS": True})
def test_the_project_default_makes_receivers_ordered(receiver_registry: Registry) -> None:
    @receiver(STEP, name="defaulted")
    def defaulted(event: NamedEvent) -> None: ...

    @receiver(STEP, name="opted_out", ordered=False)
    def opted_out(event: NamedEvent) -> None: ...

    step("a", 1)

    keys = dict(Delivery.objects.values_list("receiver", "ordering_key"))
    assert keys == {"defaulted": "a", "opted_out": ""}


def test_receiver_options_are_checked_when_declared(receiver_registry: Registry) -> None:
    def handle(event: NamedEvent) -> None: ...

    with pytest.raises(ValueError, match="on_dead='later'"):
        receiver(STEP, on_dead="later")(handle)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ordered='yes'"):
        receiver(STEP, ordered="yes")(handle)  # type: ignore[arg-type]
    assert list(receiver_registry.all()) == []


# Sequencing -------------------------------------------------------------------------------------


def test_numbers_follow_publish_order_and_a_rollback_gives_its_number_back(
    lines: Registry,
) -> None:
    step("a", 1)
    with transaction.atomic():
        step("a", 2)
        transaction.set_rollback(True)
    step("a", 3)
    publish_many([NamedEvent(STEP, {"n": n, "key": "a"}, ordering_key="a") for n in (4, 5)])

    seqs = Delivery.objects.filter(receiver="ordered").order_by("created_at")
    assert list(seqs.values_list("ordering_seq", flat=True)) == [1, 2, 3, 4]
    assert OrderingKey.objects.get(pk="a").last_seq == 4
    assert effects() == ["ordered:a:1", "ordered:a:3", "ordered:a:4", "ordered:a:5"]


def test_events_of_one_key_in_one_transaction_wait_for_each_other(lines: Registry) -> None:
    with transaction.atomic():
        publish_many([NamedEvent(STEP, {"n": n, "key": "a"}, ordering_key="a") for n in (1, 2, 3)])
        assert states() == [DeliveryState.PENDING] + [DeliveryState.WAITING] * 2

    assert states() == [DeliveryState.DELIVERED] * 3
    assert effects() == ["ordered:a:1", "ordered:a:2", "ordered:a:3"]


# Failures hold back the rest of the line, and only it -----------------------------------------


def test_a_failing_delivery_holds_back_later_ones_of_its_key_for_its_receiver_only(
    lines: Registry, script: Script
) -> None:
    script.fail[("a", 1)] = 2
    step("a", 1)
    step("a", 2)
    step("b", 1)
    step("a", 3)

    assert states() == [DeliveryState.FAILED, DeliveryState.WAITING, DeliveryState.WAITING]
    assert effects() == ["ordered:b:1"]
    assert len(effects("unordered")) == 4

    retry_now()
    assert states()[0] == DeliveryState.FAILED
    retry_now()

    assert states() == [DeliveryState.DELIVERED] * 3
    assert effects() == ["ordered:b:1", "ordered:a:1", "ordered:a:2", "ordered:a:3"]


def test_a_dead_delivery_blocks_its_key_until_a_person_retries_it(
    lines: Registry, script: Script
) -> None:
    script.give_up.add(("a", 1))
    step("a", 1)
    step("a", 2)
    step("a", 3)

    assert states() == [DeliveryState.DEAD, DeliveryState.WAITING, DeliveryState.WAITING]
    assert list(blocked_lines("default").values_list("receiver", "ordering_key", "dead")) == [
        ("ordered", "a", 1)
    ]
    Relay().run_pass()
    assert states()[1:] == [DeliveryState.WAITING] * 2

    script.give_up.clear()
    retry_deliveries(Delivery.objects.filter(state=DeliveryState.DEAD))

    assert states() == [DeliveryState.DELIVERED] * 3
    assert effects() == ["ordered:a:1", "ordered:a:2", "ordered:a:3"]
    assert count_blocked("default") == 0


def test_a_receiver_can_skip_dead_deliveries(receiver_registry: Registry) -> None:
    @receiver(STEP, name="skipper", ordered=True, on_dead="skip")
    def skipper(event: NamedEvent, envelope: Envelope) -> None:
        if event.payload["n"] == 1:
            raise GiveUp("bad one")
        _record("skipper", event, envelope)

    step("a", 1)
    step("a", 2)

    assert states("skipper") == [DeliveryState.DEAD, DeliveryState.DELIVERED]
    assert effects("skipper") == ["skipper:a:2"]
    assert count_blocked("default") == 0


@override_settings(DOMAIN_EVENTS={"ORDERED_ON_DEAD": "skip"})
def test_the_relay_releases_a_line_whose_receiver_now_skips_dead_deliveries(
    lines: Registry, script: Script
) -> None:
    with override_settings(DOMAIN_EVENTS={"ORDERED_ON_DEAD": "block"}):
        script.give_up.add(("a", 1))
        step("a", 1)
        step("a", 2)
        step("a", 3)
        assert states() == [DeliveryState.DEAD, DeliveryState.WAITING, DeliveryState.WAITING]

    Relay(grace=0).run_pass()

    assert states() == [DeliveryState.DEAD, DeliveryState.DELIVERED, DeliveryState.DELIVERED]
    assert effects() == ["ordered:a:2", "ordered:a:3"]


def test_a_released_delivery_goes_to_its_own_dispatcher(receiver_registry: Registry) -> None:
    @receiver(STEP, name="queued", ordered=True, dispatcher=RECORDING)
    def queued(event: NamedEvent) -> None: ...

    step("a", 1)
    step("a", 2)
    assert [len(call) for call in RecordingDispatcher.calls] == [1]
    [[first]] = RecordingDispatcher.calls

    from django_domain_events.delivery.runner import run_delivery

    run_delivery(first)

    assert states("queued") == [DeliveryState.DELIVERED, DeliveryState.PENDING]
    [_, [released]] = RecordingDispatcher.calls
    assert (released.receiver, released.ordering_key) == ("queued", "a")
    assert released.delivery_id == Delivery.objects.get(state=DeliveryState.PENDING).pk


def test_a_long_line_runs_without_recursion(lines: Registry, script: Script) -> None:
    script.fail[("a", 0)] = 1
    publish_many([NamedEvent(STEP, {"n": n, "key": "a"}, ordering_key="a") for n in range(1500)])
    assert states().count(DeliveryState.WAITING) == 1499

    retry_now()

    assert effects() == [f"ordered:a:{n}" for n in range(1500)]


def test_a_replay_joins_the_end_of_the_line(lines: Registry, script: Script) -> None:
    first = step("a", 1)
    script.fail[("a", 2)] = 1
    step("a", 2)
    from django_domain_events.models import OutboxEvent

    replay_events(
        OutboxEvent.objects.filter(pk=first),
        [lines.get("ordered")],  # type: ignore[list-item]
    )

    assert states() == [DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.WAITING]
    retry_now()
    assert effects() == ["ordered:a:1", "ordered:a:2", "ordered:a:1"]


# Blocked keys in the status, the metrics and the command --------------------------------------


def test_events_status_lists_blocked_keys_and_fails_on_them(
    lines: Registry, script: Script
) -> None:
    script.give_up.add(("a", 1))
    step("a", 1)
    step("a", 2)
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 ordering keys blocked by a dead delivery") as exc:
        call_command("events_status", stdout=out)

    assert exc.value.returncode == 1
    assert "Blocked ordering keys: 1.\n  ordered / a: dead 1, since " in out.getvalue()
    call_command("events_status", "--max-blocked-keys", "1", stdout=io.StringIO())
    report = io.StringIO()
    call_command("events_status", "--json", "--max-blocked-keys", "1", stdout=report)
    status = json.loads(report.getvalue())
    assert (status["blocked_keys"], status["by_state"]["waiting"]) == (1, 1)
    assert [(line["receiver"], line["ordering_key"]) for line in status["blocked"]] == [
        ("ordered", "a")
    ]


@override_settings(DOMAIN_EVENTS={"METRICS": True, "METRICS_CACHE_SECONDS": 0})
def test_the_blocked_keys_gauge_counts_lines_held_up_by_a_dead_delivery(
    lines: Registry, script: Script
) -> None:
    script.give_up.update({("a", 1), ("b", 1)})
    for key in ("a", "b", "c"):
        step(key, 1)
        step(key, 2)
    out = io.StringIO()

    call_command("events_status", "--prometheus", "--max-blocked-keys", "5", stdout=out)

    gauge = "domain_events_outbox_blocked_ordering_keys"
    assert f"\n{gauge} 2.0\n" in out.getvalue()


def test_skipping_a_dead_delivery_lets_its_line_go_on_and_it_can_still_be_retried(
    lines: Registry, script: Script
) -> None:
    script.give_up.add(("a", 1))
    step("a", 1)
    step("a", 2)
    step("a", 3)
    dead = Delivery.objects.get(state=DeliveryState.DEAD)

    for released in skip_dead([dead.pk], "default"):
        hand_over_released(released)

    assert effects() == ["ordered:a:2", "ordered:a:3"]
    dead.refresh_from_db()
    assert (dead.state, dead.ordering_key, dead.event.ordering_key) == (DeliveryState.DEAD, "", "a")
    assert count_blocked("default") == 0

    script.give_up.clear()
    retry_deliveries([dead])
    assert effects() == ["ordered:a:2", "ordered:a:3", "ordered:a:1"]


def test_pruning_forgets_keys_with_nothing_left_to_order(lines: Registry, script: Script) -> None:
    script.fail[("busy", 1)] = 1
    step("done", 1)
    step("busy", 1)
    step("busy", 2)
    out = io.StringIO()

    call_command("prune_events", "--older-than", "0s", stdout=out)

    assert "Forgot 1 ordering keys with nothing left to order." in out.getvalue()
    assert list(OrderingKey.objects.values_list("key", "last_seq")) == [("busy", 2)]
    step("done", 2)
    assert Delivery.objects.get(receiver="ordered", ordering_key="done").ordering_seq == 1
    retry_now()
    assert effects() == ["ordered:done:1", "ordered:done:2", "ordered:busy:1", "ordered:busy:2"]
