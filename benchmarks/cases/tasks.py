"""The django.tasks dispatcher on django-tasks-db's database backend (Django 6), beside the
floor a project would write by hand.

- B8: B1 + ``task.enqueue()`` on commit: the floor for publishing to django.tasks (no worker
  takes the queue; only the enqueueing is measured).
- tasks-publish: ``publish()`` with a receiver dispatched with django.tasks (against B8).

Both enqueue onto the database backend, whose task rows go to the database of the case (see
``benchmarks/tasks_router.py``) and are deleted after each run.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import django
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events import publish
from django_domain_events.declaration.registry import registry
from django_domain_events.models import Delivery

from ..benchapp.events import RAW_EVENT_TYPE, TOTAL, OrderPlaced, raw_payload
from ..benchapp.models import RawEvent
from ..harness import Bench, Target, rate_case
from ..tasks_router import tasks_database

QUEUE = f"dde-bench-{uuid.uuid4().hex[:8]}"
"""No worker takes it: the cases' tasks wait there and are deleted after each run."""


def tasks_unavailable() -> str | None:
    """Why the django.tasks cases cannot run here, or None."""
    if django.VERSION < (6, 0):
        return f"django.tasks needs Django 6; this is {django.get_version()}"
    if importlib.util.find_spec("django_tasks_db") is None:
        return 'django-tasks-db is not installed: pip install -e ".[test]" (Python 3.12+)'
    return None


@contextmanager
def enqueued_tasks(bench: Bench) -> Iterator[None]:
    """Within the block, tasks go to the case's database; after it, the case checks there are
    ``n`` and deletes them."""
    from django_tasks_db.models import DBTaskResult

    tasks = DBTaskResult.objects.using(bench.alias).filter(queue_name=QUEUE)
    with tasks_database(bench.alias):
        yield
    bench.expect("tasks enqueued", tasks.count(), bench.n)
    tasks.delete()


@rate_case(
    "B8",
    "B1 + task.enqueue() on commit, django-tasks-db (no worker)",
    floor="B1",
    unit="rows/s",
    needs=tasks_unavailable,
)
def raw_create_enqueue_on_commit(bench: Bench) -> None:
    from ..benchapp.django_tasks import noop

    task = noop.using(queue_name=QUEUE)
    rows = RawEvent.objects.using(bench.alias)
    with enqueued_tasks(bench):
        with bench.timed():
            for i in range(bench.n):
                with transaction.atomic(using=bench.alias):
                    row = rows.create(
                        event_type=RAW_EVENT_TYPE,
                        payload=raw_payload(i),
                        occurred_at=timezone.now(),
                    )
                    transaction.on_commit(
                        partial(task.enqueue, str(row.pk), bench.alias), using=bench.alias
                    )
        bench.expect("B8 rows", rows.count(), bench.n)


@rate_case(
    "tasks-publish",
    "publish() 1 event, 1 django.tasks receiver, one per atomic() (no worker)",
    floor="B8",
    target=Target(postgresql=0.9, sqlite=0.9),
    needs=tasks_unavailable,
)
def tasks_publish(bench: Bench) -> None:
    from ..benchapp.django_tasks import register_tasks_receiver

    with (
        registry.isolated(),
        override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}),
        enqueued_tasks(bench),
    ):
        register_tasks_receiver(QUEUE)
        with bench.timed():
            for i in range(bench.n):
                with transaction.atomic(using=bench.alias):
                    publish(OrderPlaced(order_id=i, total=TOTAL), using=bench.alias)
    bench.expect("deliveries", Delivery.objects.using(bench.alias).count(), bench.n)
