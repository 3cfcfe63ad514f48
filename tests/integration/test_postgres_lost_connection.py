"""A delivery whose database connection dies under it, on PostgreSQL: the run is not counted as
one of the receiver's attempts, up to ``MAX_IN_A_ROW`` runs in a row, and is counted in
``domain_events_lost_connections_total``. A hung receiver in a thread, which cannot be
interrupted, has its transaction ended by the server after its timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.test import override_settings
from prometheus_client import CollectorRegistry

from django_domain_events import NamedEvent, publish, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.lost_connections import MAX_IN_A_ROW
from django_domain_events.delivery.runner import Outcome, owed_delivery, run_delivery
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.observability import metrics
from tests.processes import wait_until

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


def idle_in_transaction_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
        )
        (count,) = cursor.fetchone()
    return int(count)


def test_a_hung_receiver_in_a_thread_gives_its_row_back_after_its_timeout(
    receiver_registry: Registry,
) -> None:
    # Another thread cannot be interrupted: the server ends its idle transaction instead.
    started, returned = threading.Event(), threading.Event()
    go_on = threading.Event()

    @receiver(SEVERED, name="integration.postgres.hangs_in_a_thread", timeout=1)
    def hangs(event: NamedEvent) -> None:
        started.set()
        go_on.wait(timeout=120)

    with use_dispatcher("deferred"):
        publish(SEVERED, {})
    delivery = Delivery.objects.get()
    outcomes: list[Outcome] = []

    def run_in_a_thread() -> None:
        try:
            outcomes.append(run(delivery))
        finally:
            connection.close()
            returned.set()

    thread = threading.Thread(target=run_in_a_thread)
    thread.start()
    try:
        assert started.wait(timeout=30)
        wait_until(lambda: idle_in_transaction_backends() == 0, "the server to end the run")
        # The row lock is free and the claim undone while the receiver still runs: the
        # relay may take the delivery again.
        with transaction.atomic():
            row = Delivery.objects.select_for_update(nowait=True).get()
        assert (row.state, row.attempts) == (DeliveryState.PENDING, 0)
        assert not returned.is_set()
    finally:
        go_on.set()
        thread.join(timeout=60)

    # The receiver's commit found its transaction ended: a timed-out attempt, counted.
    assert outcomes == [Outcome.FAILED]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)
    assert delivery.last_error.startswith(
        "ReceiverTimedOut: Receiver integration.postgres.hangs_in_a_thread timed out after 1 s"
    )
