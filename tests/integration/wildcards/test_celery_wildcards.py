"""A wildcard receiver and a once wildcard receiver on the Celery dispatcher, run by a real
``celery worker`` on each broker: the worker loads each stored event and hands it over."""

from __future__ import annotations

import pytest
from django.db import transaction

from django_domain_events import publish
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from tests.processes import CeleryWorker, wait_until
from tests.testapp.models import Effect

from .receivers import AUDIT, FIRST, effect_name

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]

TYPES = ("wildcard_tests.invoice_issued", "wildcard_tests.invoices.paid", "wildcard_tests.voided")


def all_delivered(count: int) -> list[Delivery]:
    rows = list(Delivery.objects.order_by("receiver", "event_id"))
    done = [row for row in rows if row.state == DeliveryState.DELIVERED]
    return rows if len(done) >= count else []


def test_the_worker_runs_every_matched_event_and_the_once_receiver_for_the_first_only(
    wildcard_receivers: Registry, worker: CeleryWorker
) -> None:
    ids = []
    for event_type in TYPES:
        with transaction.atomic():
            ids.append(publish(event_type, {"n": len(ids)}))
    publish("other_tests.unmatched", {})

    rows = wait_until(lambda: all_delivered(4), "four deliveries", report=worker.log)

    assert [(row.receiver, row.event_id) for row in rows] == [
        *((AUDIT, event_id) for event_id in ids),
        (FIRST, ids[0]),
    ]
    assert sorted(Effect.objects.values_list("receiver", "event_id")) == sorted(
        [
            *(
                (effect_name(AUDIT, event_type), event_id)
                for event_type, event_id in zip(TYPES, ids, strict=True)
            ),
            (effect_name(FIRST, TYPES[0]), ids[0]),
        ]
    )
