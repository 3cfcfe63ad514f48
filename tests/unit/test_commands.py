"""The operations commands: relay_events, replay_events, retry_deliveries, prune_events and
events_status, run as a person or a monitor runs them."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models.functions import Now
from django.test import override_settings
from django.utils import timezone

from django_domain_events import Envelope, GiveUp, NamedEvent, publish, receiver, use_dispatcher
from django_domain_events.checks import check_settings
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.redelivery import replay_events, retry_deliveries
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

SHIPPED = "commands_unit.shipped"
BILLED = "commands_unit.billed"


@pytest.fixture
def receivers(receiver_registry: Registry) -> Registry:
    """Two receivers of ``SHIPPED`` and one of ``BILLED``, each recording an Effect."""

    def recorder(name: str) -> Any:
        def record(event: NamedEvent, envelope: Envelope) -> None:
            if event.payload.get("give_up"):
                raise GiveUp("asked to")
            Effect.objects.create(receiver=name, event_id=envelope.event_id)

        return record

    receiver(SHIPPED, name="commands_unit.email")(recorder("email"))
    receiver(SHIPPED, name="commands_unit.crm")(recorder("crm"))
    receiver(BILLED, name="commands_unit.ledger")(recorder("ledger"))
    return receiver_registry


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def effects() -> list[tuple[str, uuid.UUID]]:
    return sorted(Effect.objects.values_list("receiver", "event_id"))


def backdate(days: float) -> None:
    """Move every event and delivery ``days`` into the past."""
    then = timezone.now() - dt.timedelta(days=days)
    OutboxEvent.objects.update(occurred_at=then)
    Delivery.objects.update(created_at=then, next_attempt_at=None)
    Delivery.objects.exclude(last_attempt_at=None).update(last_attempt_at=then, delivered_at=None)
    Delivery.objects.filter(state=DeliveryState.DELIVERED).update(delivered_at=then)


# relay_events ---------------------------------------------------------------------------------


def test_relay_once_delivers_what_is_owed_and_prints_totals(receivers: Registry) -> None:
    with use_dispatcher("deferred"):
        event_id = publish(SHIPPED, {})
    Delivery.objects.update(created_at=Now() - dt.timedelta(minutes=1))

    output = run("relay_events", "--once", "--batch-size", "10")

    assert "batches of 10, once" in output
    assert "Batch: batches 1, claimed 2, delivered 2" in output
    assert "done. Totals: batches 1, claimed 2, delivered 2" in output
    assert effects() == [("crm", event_id), ("email", event_id)]


def test_relay_says_to_run_one_relay_on_a_database_without_skip_locked() -> None:
    output = run("relay_events", "--once")

    expected = "has no SELECT ... FOR UPDATE SKIP LOCKED: run one relay at a time on it."
    assert (expected in output) is (connection.vendor == "sqlite")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size is 0; give a number >= 1."),
        (["--interval", "-1"], "--interval is -1.0; give a number of seconds >= 0."),
        (["--database", "nope"], "--database 'nope' is not in DATABASES; use one of default,"),
    ],
)
def test_relay_rejects_bad_options(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace(".", r"\.")):
        run("relay_events", "--once", *args)


# replay_events --------------------------------------------------------------------------------


def test_replay_by_id_gives_each_receiver_a_new_delivery(receivers: Registry) -> None:
    event_id = publish(SHIPPED, {})
    publish(SHIPPED, {})  # not selected

    output = run("replay_events", "--id", str(event_id))

    assert "Replayed 1 events as 2 new deliveries" in output
    assert Delivery.objects.filter(event_id=event_id).count() == 4
    assert effects().count(("email", event_id)) == 2
    assert effects().count(("crm", event_id)) == 2


def test_replay_to_named_receivers_only(receivers: Registry) -> None:
    event_id = publish(SHIPPED, {})

    run("replay_events", "--type", SHIPPED, "--receiver", "commands_unit.crm")

    assert effects().count(("crm", event_id)) == 2
    assert effects().count(("email", event_id)) == 1


def test_replay_by_time_range(receivers: Registry) -> None:
    old = publish(BILLED, {})
    OutboxEvent.objects.filter(pk=old).update(occurred_at=timezone.now() - dt.timedelta(days=3))
    recent = publish(BILLED, {})

    run("replay_events", "--since", "1d")
    run("replay_events", "--until", (timezone.now() - dt.timedelta(days=2)).date().isoformat())

    assert effects().count(("ledger", recent)) == 2
    assert effects().count(("ledger", old)) == 2


def test_replay_dry_run_lists_and_writes_nothing(receivers: Registry) -> None:
    event_id = publish(SHIPPED, {})

    output = run("replay_events", "--id", str(event_id), "--dry-run")

    assert f"{event_id} {SHIPPED} -> commands_unit.email, commands_unit.crm" in output
    assert "Dry run: 1 events would be replayed as 2 new deliveries." in output
    assert Delivery.objects.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Select the events to replay with --id, --type, --since or --until."),
        (["--id", "42"], "--id '42' is not an id (a UUID)."),
        (["--since", "yesterday"], "--since 'yesterday' is neither a date-time"),
        (["--type", "x", "--receiver", "nobody"], "No receiver is registered as 'nobody'."),
    ],
)
def test_replay_rejects_bad_selections(receivers: Registry, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as raised:
        run("replay_events", *args)

    assert message in str(raised.value)


# retry_deliveries -----------------------------------------------------------------------------


def test_retry_runs_a_dead_delivery_again_with_fresh_attempts(receivers: Registry) -> None:
    event_id = publish(BILLED, {"give_up": True})
    dead = Delivery.objects.get()
    assert (dead.state, dead.attempts) == (DeliveryState.DEAD, 1)
    OutboxEvent.objects.update(payload={})  # the cause is fixed

    output = run("retry_deliveries", "--id", str(dead.pk))

    assert "Retried 1 dead deliveries" in output
    row = Delivery.objects.get()
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 1)
    assert effects() == [("ledger", event_id)]


def test_retry_selects_by_receiver_and_state(receivers: Registry) -> None:
    publish(SHIPPED, {"give_up": True})
    Delivery.objects.filter(receiver="commands_unit.crm").update(state=DeliveryState.FAILED)
    OutboxEvent.objects.update(payload={})

    assert "Dry run: 1 dead deliveries would be retried." in run(
        "retry_deliveries", "--all", "--dry-run"
    )
    run("retry_deliveries", "--receiver", "commands_unit.crm", "--state", "failed")

    assert dict(Delivery.objects.values_list("receiver", "state")) == {
        "commands_unit.email": DeliveryState.DEAD,
        "commands_unit.crm": DeliveryState.DELIVERED,
    }


def test_retry_leaves_deliveries_in_other_states_alone(receivers: Registry) -> None:
    publish(BILLED, {})
    delivered = Delivery.objects.get()

    output = run("retry_deliveries", "--id", str(delivered.pk))

    assert "Retried 0 dead deliveries" in output
    assert Delivery.objects.get().attempts == 1


def test_retry_needs_a_selection() -> None:
    with pytest.raises(CommandError, match="or give --all to retry every one"):
        run("retry_deliveries")


# The functions behind the admin's actions ----------------------------------------------------


def test_replay_events_writes_and_dispatches_deliveries(receivers: Registry) -> None:
    event_id = publish(SHIPPED, {})
    email = receivers.get("commands_unit.email")
    assert email is not None

    created = replay_events(OutboxEvent.objects.all(), [email])

    assert [(row.event_id, row.receiver) for row in created] == [(event_id, "commands_unit.email")]
    assert effects().count(("email", event_id)) == 2


def test_retry_deliveries_returns_what_it_retried(receivers: Registry) -> None:
    publish(BILLED, {"give_up": True})
    OutboxEvent.objects.update(payload={})

    rows = retry_deliveries(Delivery.objects.all())

    assert [row.state for row in rows] == [DeliveryState.DELIVERED]


# prune_events ---------------------------------------------------------------------------------


def test_prune_deletes_only_old_events_whose_deliveries_are_all_delivered(
    receivers: Registry,
) -> None:
    delivered = publish(SHIPPED, {})
    with use_dispatcher("deferred"):
        pending = publish(SHIPPED, {})
    dead = publish(BILLED, {"give_up": True})
    no_receivers = publish("commands_unit.unheard", {})
    backdate(days=40)
    recent = publish(BILLED, {})

    output = run("prune_events", "--older-than", "30d", "--batch-size", "1")

    assert "Deleted 1 events, 2 deliveries." in output
    assert "Deleted 2 events older than 30d (all delivered) and 2 deliveries, in 2 batches." in (
        output
    )
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {pending, dead, recent}
    assert not Delivery.objects.filter(event_id__in=[delivered, no_receivers]).exists()


def test_prune_include_dead_deletes_old_dead_letters_too(receivers: Registry) -> None:
    publish(BILLED, {"give_up": True})
    backdate(days=10)

    assert "Dry run: 0 events" in run("prune_events", "--older-than", "7d", "--dry-run")
    assert "Dry run: 1 events" in run(
        "prune_events", "--older-than", "7d", "--include-dead", "--dry-run"
    )
    run("prune_events", "--older-than", "7", "--include-dead")

    assert not OutboxEvent.objects.exists()


def test_prune_keeps_an_old_event_whose_delivery_settled_recently(receivers: Registry) -> None:
    publish(BILLED, {})
    backdate(days=40)
    Delivery.objects.update(last_attempt_at=Now(), delivered_at=Now())

    run("prune_events", "--older-than", "30d")

    assert OutboxEvent.objects.count() == 1


def test_prune_defaults_to_the_retention_setting(receivers: Registry) -> None:
    publish(BILLED, {})
    backdate(days=3)

    with override_settings(DOMAIN_EVENTS={"PRUNE_RETENTION_DAYS": 2}):
        output = run("prune_events")

    assert "Deleted 1 events past their retention" in output


def test_prune_rejects_a_bad_duration() -> None:
    with pytest.raises(CommandError, match="--older-than 'a month' is not a duration"):
        run("prune_events", "--older-than", "a month")


# events_status --------------------------------------------------------------------------------


def test_status_of_a_healthy_outbox(receivers: Registry) -> None:
    publish(SHIPPED, {})
    publish(BILLED, {"give_up": True})

    output = run("events_status")

    assert (
        "Deliveries: pending 0, dispatched 0, delivered 2, failed 0, dead 1, waiting 0, "
        "scheduled 0, cancelled 0." in output
    )
    assert "Owed now: 0." in output
    assert "  commands_unit.ledger: dead 1" in output
    assert output.endswith("Healthy.\n")


def test_status_fails_when_a_delivery_has_been_owed_too_long(receivers: Registry) -> None:
    with use_dispatcher("deferred"):
        publish(SHIPPED, {})
    Delivery.objects.update(created_at=Now() - dt.timedelta(minutes=10))
    out = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("events_status", "--json", stdout=out)

    assert raised.value.returncode == 1
    assert "a delivery has been owed for 600 s, more than 300 s" in str(raised.value)
    report = json.loads(out.getvalue())
    assert (report["healthy"], report["owed"]) == (False, 2)
    assert report["oldest_owed_seconds"] == pytest.approx(600, abs=5)
    assert report["by_receiver"]["commands_unit.crm"]["pending"] == 1
    # A looser threshold passes.
    run("events_status", "--max-owed-age", "3600")


def test_status_fails_over_the_dead_threshold(receivers: Registry) -> None:
    publish(BILLED, {"give_up": True})

    with pytest.raises(CommandError, match="1 dead deliveries, more than 0"):
        run("events_status", "--max-dead", "0")
    with override_settings(DOMAIN_EVENTS={"STATUS_MAX_DEAD": 0}), pytest.raises(CommandError):
        run("events_status")


# Settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("RELAY_BATCH_SIZE", 0),
        ("RELAY_INTERVAL", -1),
        ("RELAY_GRACE", "5"),
        ("RELAY_LEASE", 0.5),
        ("DISPATCH_TIMEOUT", float("inf")),
        ("PRUNE_RETENTION_DAYS", -1),
        ("STATUS_MAX_OWED_AGE", None),
        ("STATUS_MAX_DEAD", -1),
        ("STATUS_MAX_DEAD", 1.5),
    ],
)
def test_bad_relay_and_operations_settings_are_e002(key: str, value: object) -> None:
    with override_settings(DOMAIN_EVENTS={key: value}):
        errors = check_settings()

    assert [error.id for error in errors] == ["django_domain_events.E002"]
    assert errors[0].msg.startswith(f"DOMAIN_EVENTS[{key!r}] is {value!r}; it must be ")


@override_settings(
    DOMAIN_EVENTS={
        "RELAY_BATCH_SIZE": 1,
        "RELAY_INTERVAL": 0,
        "RELAY_GRACE": 0,
        "RELAY_LEASE": 1,
        "DISPATCH_TIMEOUT": 0,
        "PRUNE_RETENTION_DAYS": 0,
        "STATUS_MAX_OWED_AGE": 0,
        "STATUS_MAX_DEAD": 0,
    }
)
def test_relay_and_operations_settings_at_their_smallest_pass() -> None:
    assert check_settings() == []
