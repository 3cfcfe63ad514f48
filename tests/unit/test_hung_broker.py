"""A broker that accepts connections and never answers (a black hole in this process): the
first publish is bounded by CELERY_BROKER_TIMEOUT, and the publishes within the cool-down that
follows leave their deliveries owed without touching the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery import Celery
from django.db import transaction
from django.test import override_settings
from prometheus_client import CollectorRegistry

import django_domain_events.dispatchers.celery.tasks  # noqa: F401 - registers the task
from django_domain_events import publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.dispatchers.celery import cooldown
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.observability import metrics
from tests.black_hole import BlackHole

pytestmark = pytest.mark.django_db(transaction=True)

BROKER_TIMEOUT = 1.0

# Set on the fixture's app by the test module path: DOMAIN_EVENTS["CELERY_APP"] names it.
hung_app: Celery | None = None


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    found = BlackHole()
    yield found
    found.close()


@pytest.fixture(params=["redis", "amqp"])
def hung_broker(request: pytest.FixtureRequest, hole: BlackHole) -> Iterator[Celery]:
    global hung_app
    if request.param == "redis":
        url = f"redis://127.0.0.1:{hole.port}/0"
    else:
        url = f"amqp://guest:guest@127.0.0.1:{hole.port}//"
    hung_app = Celery("dde-hung", broker=url, set_as_current=False, fixups=[])
    with override_settings(
        DOMAIN_EVENTS={
            "CELERY_APP": "tests.unit.test_hung_broker.hung_app",
            "CELERY_BROKER_TIMEOUT": BROKER_TIMEOUT,
            # Long enough that a loaded machine never outlasts it within the test.
            "CELERY_BROKER_COOLDOWN": 600,
            "METRICS": True,
        }
    ):
        yield hung_app
    hung_app = None


@pytest.fixture
def counted() -> Iterator[CollectorRegistry]:
    with metrics.use_registry(CollectorRegistry()) as fresh:
        yield fresh


def skipped(registry: CollectorRegistry) -> float:
    found = registry.get_sample_value("domain_events_sends_skipped_total", {"dispatcher": "celery"})
    return found or 0.0


def test_a_hung_broker_costs_one_bounded_publish_then_none(
    receiver_registry: Registry,
    hung_broker: Celery,
    hole: BlackHole,
    counted: CollectorRegistry,
) -> None:
    receiver("unit_hung.sent", dispatcher="celery", name="unit_hung.sent")(print)

    started = time.monotonic()
    first = publish("unit_hung.sent", {})
    took = time.monotonic() - started

    # Unbounded before (redis-py waited for an answer for ever). redis-py retries a timed-out
    # command itself, up to 3 times: the margin over that is for a loaded machine.
    assert took < BROKER_TIMEOUT * 3 * 3
    assert hole.accepted >= 1
    assert Delivery.objects.get(event_id=first).state == DeliveryState.PENDING
    assert cooldown.active(hung_broker.conf.broker_url)
    reached = hole.accepted

    with transaction.atomic():
        later = [publish("unit_hung.sent", {"n": n}) for n in range(3)]
    publish("unit_hung.sent", {"n": 3})

    assert hole.accepted == reached  # the broker was not tried again
    rows = Delivery.objects.filter(event_id__in=later)
    assert set(rows.values_list("state", flat=True)) == {DeliveryState.PENDING}
    assert skipped(counted) == 4
