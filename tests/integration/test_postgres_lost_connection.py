"""A delivery whose database connection dies under it, on PostgreSQL: the run is not counted as
one of the receiver's attempts, up to ``MAX_IN_A_ROW`` runs in a row, and is counted in
``domain_events_lost_connections_total``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import override_settings
from prometheus_client import CollectorRegistry

from django_domain_events import NamedEvent, publish, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.lost_connections import MAX_IN_A_ROW
from django_domain_events.delivery.runner import Outcome, owed_delivery, run_delivery
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.observability import metrics

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SEVERED = "integration_postgres.severed"


@pytest.fixture
def counted() -> Iterator[CollectorRegistry]:
    with (
        metrics.use_registry(CollectorRegistry()) as fresh,
        override_settings(DOMAIN_EVENTS={"METRICS": True, "METRICS_CACHE_SECONDS": 0}),
    ):
        yield fresh


def run(delivery: Delivery) -> Outcome:
    return run_delivery(owed_delivery(delivery, "default"))


def test_runs_a_lost_connection_ends_spend_no_attempt_until_too_many_in_a_row(
    receiver_registry: Registry, counted: CollectorRegistry
) -> None:
    @receiver(SEVERED, name="integration.postgres.severs", max_attempts=2)
    def severs(event: NamedEvent) -> None:
        with connection.cursor() as cursor:  # the server ends this connection, as on a restart
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with use_dispatcher("deferred"):
        publish(SEVERED, {})
    delivery = Delivery.objects.get()

    for _ in range(MAX_IN_A_ROW):
        assert run(delivery) is Outcome.FAILED
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 0)
        assert delivery.last_error.startswith("The database connection was lost")
    # One more in a row is the receiver's doing: it counts.
    assert run(delivery) is Outcome.FAILED
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)
    assert delivery.last_error.startswith("OperationalError: terminating connection")

    lost = counted.get_sample_value(
        "domain_events_lost_connections_total", {"receiver": "integration.postgres.severs"}
    )
    assert lost == MAX_IN_A_ROW


def test_a_database_error_on_a_connection_that_survives_is_the_receiver_s(
    receiver_registry: Registry,
) -> None:
    @receiver(SEVERED, name="integration.postgres.times_out")
    def times_out(event: NamedEvent) -> None:
        with connection.cursor() as cursor:  # an OperationalError; the connection lives on
            cursor.execute("SET LOCAL statement_timeout = 1")
            cursor.execute("SELECT pg_sleep(1)")

    with use_dispatcher("deferred"):
        publish(SEVERED, {})
    delivery = Delivery.objects.get()

    assert run(delivery) is Outcome.FAILED
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)
    assert "canceling statement due to statement timeout" in delivery.last_error
