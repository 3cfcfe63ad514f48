"""The task and the database connection a worker keeps between tasks (``CELERY_DB_REUSE_MAX``):
when the server has closed it meanwhile, the task reconnects instead of failing."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from django_domain_events import NamedEvent, publish, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.dispatchers.celery.tasks import deliver
from django_domain_events.models import Delivery, DeliveryState

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_task_reconnects_when_the_server_closed_its_connection(
    receiver_registry: Registry,
) -> None:
    ran: list[NamedEvent] = []
    receiver("integration_celery.kept", dispatcher="deferred", name="integration_celery.kept")(
        ran.append
    )
    publish("integration_celery.kept", {})
    delivery = Delivery.objects.get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    # Another session ends this one, as a database restart or an idle timeout would.
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        killer.close()

    assert deliver.apply(args=[str(delivery.pk), "default"]).get() == "delivered"

    assert len(ran) == 1
    assert Delivery.objects.get().state == DeliveryState.DELIVERED
