"""A Celery task whose delivery's stored event cannot be decoded (its payload changed, after
publish, to one nested too deeply): the worker settles the delivery dead, with the reason,
once; the task succeeds and is not sent again."""

from __future__ import annotations

import pytest
from django.db import transaction
from django_celery_results.models import TaskResult

from django_domain_events import publish
from django_domain_events.models import Delivery, DeliveryState
from tests.processes import CeleryWorker, wait_until
from tests.stored_rows import UNDECODABLE_BECAUSE, UNDECODABLE_PAYLOAD, change_event
from tests.testapp import receivers
from tests.testapp.models import Effect

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_task_for_an_undecodable_event_settles_it_dead_once(worker: CeleryWorker) -> None:
    with transaction.atomic():
        good = publish(receivers.RECORDED, {"order_id": 1})
        bad = publish(receivers.RECORDED, {"order_id": 2})
        change_event(bad, payload=UNDECODABLE_PAYLOAD)

    def all_settled() -> list[Delivery]:
        rows = list(Delivery.objects.filter(event_id__in=(good, bad)))
        settled = (DeliveryState.DELIVERED, DeliveryState.DEAD)
        return rows if rows and all(row.state in settled for row in rows) else []

    rows = wait_until(all_settled, "every delivery to settle", report=worker.log)
    results = wait_until(
        lambda: list(TaskResult.objects.all()) if TaskResult.objects.count() >= 4 else [],
        "the task results",
        report=worker.log,
    )

    assert {row.state for row in rows if row.event_id == good} == {DeliveryState.DELIVERED}
    dead = [row for row in rows if row.event_id == bad]
    assert {(row.state, row.attempts) for row in dead} == {(DeliveryState.DEAD, 1)}
    errors = [row.last_error for row in dead]
    assert all(UNDECODABLE_BECAUSE in error for error in errors), errors
    assert not Effect.objects.filter(event_id=bad).exists()
    assert sorted((result.status, result.result) for result in results) == [
        ("SUCCESS", '"dead"'),
        ("SUCCESS", '"dead"'),
        ("SUCCESS", '"delivered"'),
        ("SUCCESS", '"delivered"'),
    ]
