"""Retention per event type: how each state's retention is looked up (the setting for the
type, the class's attribute, the setting's default, the built-in default), what prune_events
deletes by it, --older-than replacing it, the system checks, and the relay's prune schedule."""

from __future__ import annotations

import datetime as dt
import io
import time
import uuid
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_domain_events import DomainEvent, GiveUp, NamedEvent, publish, receiver
from django_domain_events.checks import check_retention
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.operations.pruning import prune_events
from django_domain_events.operations.retention import retention_for, retention_groups
from django_domain_events.operations.scheduled_pruning import PruneSchedule

pytestmark = pytest.mark.django_db(transaction=True)

DAY = dt.timedelta(days=1)
SHORT = "unit_retention.short"
AUDIT = "unit_retention.audit"
PLAIN = "unit_retention.plain"


@pytest.fixture
def audit_class(disposable_classes: None) -> type[DomainEvent]:
    @dataclass(frozen=True)
    class Audited(DomainEvent):
        event_type = AUDIT
        retention = {"delivered": 365 * DAY}

    return Audited


@pytest.fixture
def receivers(receiver_registry: Registry, audit_class: type[DomainEvent]) -> Registry:
    for event_type in (SHORT, AUDIT, PLAIN):

        @receiver(event_type, name=f"{event_type}.fine")
        def fine(event: object) -> None:
            pass

    @receiver(SHORT, name=f"{SHORT}.gives_up")
    def gives_up(event: NamedEvent) -> None:
        if event.payload.get("give_up"):
            raise GiveUp("not for us")

    return receiver_registry


def aged(event_id: uuid.UUID, days: float) -> None:
    """Move one event and its deliveries ``days`` into the past."""
    then = timezone.now() - dt.timedelta(days=days)
    OutboxEvent.objects.filter(pk=event_id).update(occurred_at=then)
    Delivery.objects.filter(event_id=event_id).update(created_at=then, last_attempt_at=then)


def left() -> set[uuid.UUID]:
    return set(OutboxEvent.objects.values_list("pk", flat=True))


# Looking a retention up -----------------------------------------------------------------------


def test_by_default_delivered_ones_go_after_prune_retention_days_and_dead_ones_never() -> None:
    with override_settings(DOMAIN_EVENTS={"PRUNE_RETENTION_DAYS": 12}):
        assert retention_for(PLAIN) == {"delivered": 12 * DAY, "dead": None, "cancelled": None}


def test_each_state_is_looked_up_from_the_type_s_setting_to_the_class_to_the_default(
    audit_class: type[DomainEvent],
) -> None:
    configured = {
        "default": {"delivered": 7 * DAY, "dead": 90 * DAY},
        AUDIT: {"dead": None},
    }
    with override_settings(DOMAIN_EVENTS={"RETENTION": configured}):
        # delivered from the class, dead from the setting for the type.
        assert retention_for(AUDIT) == {"delivered": 365 * DAY, "dead": None, "cancelled": None}
        assert retention_for(PLAIN) == {"delivered": 7 * DAY, "dead": 90 * DAY, "cancelled": None}
    with override_settings(DOMAIN_EVENTS={"RETENTION": {AUDIT: {"delivered": 2 * DAY}}}):
        # The setting for the type wins over the class: the deployment decides.
        assert retention_for(AUDIT)["delivered"] == 2 * DAY


def test_types_sharing_a_retention_are_pruned_as_one_group(
    audit_class: type[DomainEvent],
) -> None:
    configured = {
        "a.one": {"delivered": 3 * DAY},
        "a.two": {"delivered": 3 * DAY},
        "a.same_as_default": {"delivered": 30 * DAY},
    }
    with override_settings(DOMAIN_EVENTS={"RETENTION": configured}):
        groups = retention_groups()

    others, *special = groups
    assert others.others
    assert others.event_types == {"a.one", "a.two", AUDIT}
    assert sorted(sorted(group.event_types) for group in special) == [["a.one", "a.two"], [AUDIT]]


# prune_events by retention --------------------------------------------------------------------


@pytest.mark.usefixtures("receivers")
def test_prune_honours_each_type_s_retention_and_keeps_dead_letters(
    audit_class: type[DomainEvent],
) -> None:
    short = publish(SHORT, {})
    audit = publish(audit_class())
    dead = publish(SHORT, {"give_up": True})
    recent = publish(SHORT, {})
    for event_id in (short, audit, dead):
        aged(event_id, days=40)
    aged(recent, days=5)

    with override_settings(DOMAIN_EVENTS={"RETENTION": {SHORT: {"delivered": 7 * DAY}}}):
        result = prune_events()

    assert left() == {audit, dead, recent}
    assert (result.events, result.deliveries) == (1, 2)


@pytest.mark.usefixtures("receivers")
def test_dead_letters_go_after_their_own_retention() -> None:
    dead = publish(SHORT, {"give_up": True})
    aged(dead, days=10)
    retention = {"default": {"delivered": 3 * DAY, "dead": 9 * DAY}}

    with override_settings(DOMAIN_EVENTS={"RETENTION": {**retention}}):
        assert prune_events(dry_run=True).events == 1
        prune_events()

    assert left() == set()


@pytest.mark.usefixtures("receivers")
def test_an_event_with_a_delivery_still_owed_is_never_pruned() -> None:
    owed = publish(SHORT, {})
    aged(owed, days=400)
    Delivery.objects.filter(receiver=f"{SHORT}.fine").update(state=DeliveryState.FAILED)

    with override_settings(DOMAIN_EVENTS={"RETENTION": {"default": {"delivered": DAY}}}):
        prune_events(include_dead=True)

    assert left() == {owed}


@pytest.mark.usefixtures("receivers")
def test_an_event_no_receiver_got_goes_after_the_delivered_retention() -> None:
    unheard = publish("unit_retention.unheard", {})
    aged(unheard, days=5)
    retention = {"delivered": 7 * DAY, "dead": DAY}

    with override_settings(DOMAIN_EVENTS={"RETENTION": {"default": retention}}):
        prune_events()
        assert left() == {unheard}
        aged(unheard, days=8)
        prune_events()

    assert left() == set()


@pytest.mark.usefixtures("receivers")
def test_a_retention_of_none_keeps_delivered_ones_for_ever() -> None:
    kept = publish(SHORT, {})
    aged(kept, days=4000)

    with override_settings(DOMAIN_EVENTS={"RETENTION": {SHORT: {"delivered": None}}}):
        assert prune_events().events == 0

    assert left() == {kept}


@pytest.mark.usefixtures("receivers")
def test_older_than_replaces_every_retention_the_class_s_too(
    audit_class: type[DomainEvent],
) -> None:
    audit = publish(audit_class())
    aged(audit, days=40)
    assert prune_events().events == 0  # kept a year by its class

    prune_events(dt.timedelta(days=30))

    assert left() == set()


@pytest.mark.usefixtures("receivers")
def test_include_dead_without_older_than_prunes_dead_letters_after_the_delivered_time() -> None:
    dead = publish(SHORT, {"give_up": True})
    aged(dead, days=10)

    with override_settings(DOMAIN_EVENTS={"RETENTION": {"default": {"delivered": 7 * DAY}}}):
        assert prune_events().events == 0
        assert prune_events(include_dead=True).events == 1


@pytest.mark.usefixtures("receivers")
def test_a_deadline_stops_after_the_batch_in_hand() -> None:
    for _ in range(3):
        aged(publish(SHORT, {}), days=40)

    first = prune_events(batch_size=1, deadline=time.monotonic())
    assert (first.events, first.complete) == (1, False)
    rest = prune_events(batch_size=1)
    assert (rest.events, rest.complete) == (2, True)


@pytest.mark.usefixtures("receivers")
def test_prune_events_command_prunes_by_retention() -> None:
    event_id = publish(SHORT, {})
    aged(event_id, days=8)
    out = io.StringIO()

    with override_settings(DOMAIN_EVENTS={"RETENTION": {SHORT: {"delivered": 7 * DAY}}}):
        call_command("prune_events", stdout=out)

    assert "Deleted 1 events past their retention and 2 deliveries" in out.getvalue()
    assert left() == set()


# The relay's schedule -------------------------------------------------------------------------


@pytest.mark.usefixtures("receivers")
def test_a_prune_schedule_prunes_at_once_then_waits_for_its_interval() -> None:
    aged(publish(SHORT, {}), days=40)
    schedule = PruneSchedule(using="default", every=3600)

    first = schedule.run_if_due()
    aged(publish(SHORT, {}), days=40)

    assert first is not None
    assert first.events == 1
    assert schedule.run_if_due() is None
    assert OutboxEvent.objects.count() == 1


@pytest.mark.usefixtures("receivers")
def test_a_prune_cut_short_goes_on_at_the_next_call_before_its_interval() -> None:
    for _ in range(3):
        aged(publish(SHORT, {}), days=40)
    schedule = PruneSchedule(using="default", every=3600, batch_size=1, slice_seconds=0)

    counts = [schedule.run_if_due() for _ in range(4)]

    # The third slice took the last event but ran out of time before it could tell.
    assert [None if found is None else found.events for found in counts] == [1, 1, 1, 0]
    assert schedule.run_if_due() is None
    assert left() == set()


@pytest.mark.usefixtures("receivers")
def test_relay_events_once_with_prune_every_prunes_after_its_pass() -> None:
    aged(publish(SHORT, {}), days=40)
    out = io.StringIO()

    call_command("relay_events", "--once", "--prune-every", "1h", stdout=out)

    assert "Pruning by retention every 3600 s." in out.getvalue()
    assert left() == set()


# Checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retention", "problem"),
    [
        ([("default", 7)], "must be a dict of event types"),
        ({"default": 7}, "must be a dict of states"),
        ({"default": {"pending": DAY}}, "names the state 'pending', which is not settled"),
        ({SHORT: {"delivered": 7}}, "['delivered'] is 7; it must be a timedelta"),
        ({SHORT: {"dead": -DAY}}, "must be a timedelta of 0 or more"),
    ],
)
def test_e040_a_bad_retention_setting(retention: object, problem: str) -> None:
    with override_settings(DOMAIN_EVENTS={"RETENTION": retention}):
        errors = check_retention()

    assert [error.id for error in errors] == ["django_domain_events.E040"]
    assert problem in errors[0].msg
    assert "timedelta(days=7)" in (errors[0].hint or "")


@pytest.mark.usefixtures("disposable_classes")
def test_e041_a_bad_retention_on_an_event_class() -> None:
    @dataclass(frozen=True)
    class Sloppy(DomainEvent):
        event_type = "unit_retention.sloppy"
        retention = {"delivered": 7}

    [error] = check_retention()

    assert error.id == "django_domain_events.E041"
    assert f"{Sloppy.__qualname__}.retention['delivered'] is 7" in error.msg


@pytest.mark.parametrize("value", [0, -5, "1h", True])
def test_a_bad_relay_prune_every_is_e002(value: object) -> None:
    with override_settings(DOMAIN_EVENTS={"RELAY_PRUNE_EVERY": value}):
        [error] = check_retention()

    assert error.id == "django_domain_events.E002"
    assert "RELAY_PRUNE_EVERY" in error.msg


def test_good_retention_settings_pass_the_checks() -> None:
    configured = {
        "RETENTION": {"default": {"delivered": 7 * DAY, "dead": None}, AUDIT: {"dead": 0 * DAY}},
        "RELAY_PRUNE_EVERY": 3600,
    }
    with override_settings(DOMAIN_EVENTS=configured):
        assert check_retention() == []
