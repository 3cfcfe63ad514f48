"""DOMAIN_EVENTS["DEBUG"]: every publish, dispatch and delivery logged with ids and timings."""

from __future__ import annotations

import logging
import re

import pytest
from django.test import override_settings

from django_domain_events import collect_events, publish, receiver
from django_domain_events.checks import check_settings
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery
from tests.testapp.events import Pinged

transactional = pytest.mark.django_db(transaction=True)

TIMING = r"in \d+\.\d{3} ms"


@pytest.fixture
def beep_receiver(receiver_registry: Registry) -> None:
    receiver(Pinged, name="unit.debug.on_beep")(lambda event: None)


def debug_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "django_domain_events" and record.levelno == logging.DEBUG
    ]


@transactional
@pytest.mark.usefixtures("beep_receiver")
def test_debug_logs_the_publish_the_dispatch_and_the_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_domain_events")

    with override_settings(DOMAIN_EVENTS={"DEBUG": True}):
        event_id = publish(Pinged(n=1))

    delivery_id = Delivery.objects.get().id
    # The dispatch is timed around the receivers it ran, so it is logged after them.
    published, delivered, dispatched = debug_messages(caplog)
    assert re.fullmatch(
        rf"Published testapp\.Pinged {event_id} on 'default' \(correlation {event_id}, "
        rf"cause -\) with 1 deliveries \[{delivery_id} unit\.debug\.on_beep via sync\] {TIMING}",
        published,
    )
    assert re.fullmatch(
        rf"Dispatched 1 deliveries to 'sync' {TIMING}: \[{delivery_id}\]", dispatched
    )
    assert re.fullmatch(
        rf"Delivery {delivery_id} to unit\.debug\.on_beep \(attempt 1\): delivered {TIMING}",
        delivered,
    )


@transactional
@pytest.mark.usefixtures("beep_receiver")
def test_collected_events_are_logged_when_collected_and_when_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_domain_events")

    with (
        override_settings(DOMAIN_EVENTS={"DEBUG": True, "DISPATCHER": "deferred"}),
        collect_events(commit=False),
    ):
        publish(Pinged(n=1))

    collected, ended = debug_messages(caplog)
    assert collected.startswith("Collected testapp.Pinged ")
    assert re.fullmatch(
        rf"collect_events\(commit=False\) ended: 1 events, 1 deliveries not written \(dry run\) "
        rf"{TIMING}",
        ended,
    )


@transactional
@pytest.mark.usefixtures("beep_receiver")
def test_nothing_is_logged_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="django_domain_events")

    with override_settings(DOMAIN_EVENTS={"DEBUG": False}):
        publish(Pinged(n=1))

    assert debug_messages(caplog) == []


def test_debug_must_be_a_boolean() -> None:
    with override_settings(DOMAIN_EVENTS={"DEBUG": "yes"}):
        [error] = check_settings()

    assert error.id == "django_domain_events.E002"
    assert error.msg == "DOMAIN_EVENTS['DEBUG'] is 'yes'; it must be True or False."
