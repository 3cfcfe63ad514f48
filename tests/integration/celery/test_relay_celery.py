"""The relay with the Celery dispatcher, a real broker and a real worker: deliveries the broker
refused at commit, and deliveries whose task was lost, are sent again and delivered once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db.models.functions import Now

from django_domain_events import publish
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState
from tests.brokers import Broker, current_celery_app, make_app
from tests.processes import CeleryWorker, wait_until
from tests.tcp_proxy import TCPProxy
from tests.testapp import receivers
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def publish_while_the_broker_is_down(broker: Broker, queue: str) -> uuid.UUID:
    """Publish to the two Celery receivers of ``RECORDED`` through a broker address nothing
    answers at: the deliveries stay owed."""
    proxy = TCPProxy(broker.host, broker.port)
    proxy.close()
    with current_celery_app(make_app(broker.with_port(proxy.port), {}), queue):
        return publish(receivers.RECORDED, {})


def delivered_once(event_id: uuid.UUID) -> bool:
    rows = Delivery.objects.filter(event_id=event_id)
    return bool(rows) and all(row.state == DeliveryState.DELIVERED for row in rows)


def effects(event_id: uuid.UUID) -> list[tuple[str, int]]:
    return sorted(Effect.objects.filter(event_id=event_id).values_list("receiver", "attempt"))


def test_deliveries_the_broker_refused_are_sent_by_the_relay(
    broker: Broker, queue: str, worker: CeleryWorker
) -> None:
    event_id = publish_while_the_broker_is_down(broker, queue)
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}

    totals = Relay(grace=0).run_pass()

    assert (totals.claimed, totals.sent) == (2, 2)
    wait_until(lambda: delivered_once(event_id), "the worker to deliver", report=worker.log)
    assert effects(event_id) == [("celery_tests.record", 1), ("celery_tests.record_async", 1)]


def test_deliveries_whose_task_was_lost_are_sent_again_after_the_timeout(
    broker: Broker, queue: str, worker: CeleryWorker
) -> None:
    event_id = publish_while_the_broker_is_down(broker, queue)
    # As a publisher that wrote them dispatched and died before sending leaves them.
    Delivery.objects.update(
        state=DeliveryState.DISPATCHED, dispatched_at=Now() - dt.timedelta(minutes=10)
    )
    relay = Relay(dispatch_timeout=900)
    assert relay.run_pass().claimed == 0  # not lost yet by this timeout

    totals = Relay(dispatch_timeout=300).run_pass()

    assert (totals.claimed, totals.sent) == (2, 2)
    wait_until(lambda: delivered_once(event_id), "the worker to deliver", report=worker.log)
    assert effects(event_id) == [("celery_tests.record", 1), ("celery_tests.record_async", 1)]
