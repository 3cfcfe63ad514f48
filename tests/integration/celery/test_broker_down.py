"""A broker that goes away: publishing still returns promptly and the delivery stays owed."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import transaction

from django_domain_events import publish
from django_domain_events.models import Delivery, DeliveryState
from tests.brokers import Broker, current_celery_app, make_app
from tests.tcp_proxy import TCPProxy
from tests.testapp import receivers

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("celery_app")  # deletes the queue at the end
def test_an_unreachable_broker_leaves_deliveries_owed_and_the_caller_unharmed(
    broker: Broker, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TCPProxy(broker.host, broker.port)
    app = make_app(broker.with_port(proxy.port), broker.transport_options)
    with current_celery_app(app, queue), caplog.at_level(logging.ERROR, "django_domain_events"):
        reached = publish(receivers.DOOMED, {})
        proxy.close()  # the broker goes down with a pooled connection open to it

        started = time.monotonic()
        with transaction.atomic():
            lost = publish(receivers.DOOMED, {})
        took = time.monotonic() - started

        # Bounded by DOMAIN_EVENTS["CELERY_PUBLISH_TIMEOUT"] (1.5 s by default); the margin is
        # for slow CI machines, not for the dispatcher.
        assert took < 3.0
        assert Delivery.objects.get(event_id=reached).state == DeliveryState.DISPATCHED
        lost_delivery = Delivery.objects.get(event_id=lost)
        assert (lost_delivery.state, lost_delivery.task_id) == (DeliveryState.PENDING, "")
        [record] = caplog.records
        assert record.getMessage().startswith("Could not send 1 of 1 deliveries to Celery")
        assert "they stay owed" in record.getMessage()
        assert record.exc_info is not None
