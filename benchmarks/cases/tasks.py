"""The django.tasks dispatcher on django-tasks-db's database backend (Django 6), beside the
floor a project would write by hand.

- B8: B1 + ``task.enqueue()`` on commit: the floor for publishing to django.tasks (no worker
  takes the queue; only the enqueueing is measured).
- tasks-publish: ``publish()`` with a receiver dispatched with django.tasks (against B8).
- B9: B8 with a real ``db_worker`` whose task loads the row, does nothing and updates it: the
  floor for django.tasks end to end, timed until the last row is updated.
- tasks-e2e: ``publish()`` with the worker running the deliveries (against B9).

All enqueue onto the database backend, whose task rows go to the database of the case (see
``benchmarks/tasks_router.py``) and are deleted after each run. The worker (django-tasks-db's
``manage.py db_worker``, one process per database, polling every 10 ms) is started on first
use and stopped when the run ends.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import django
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events.declaration.registry import registry
from django_domain_events.models import Delivery, DeliveryState

from .. import children
from ..benchapp.events import RAW_EVENT_TYPE, publish_orders, raw_payload
from ..benchapp.models import RawEvent
from ..harness import Bench, Target, rate_case
from ..tasks_router import tasks_database

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:8]
QUEUE = f"dde-bench-idle-{RUN}"
"""No worker takes it: the publish cases' tasks wait there and are deleted after each run."""
WORK_QUEUE = f"dde-bench-work-{RUN}"
"""The workers' queue."""
WAIT_SECONDS = 300


def tasks_unavailable() -> str | None:
    """Why the django.tasks cases cannot run here, or None."""
    if django.VERSION < (6, 0):
        return f"django.tasks needs Django 6; this is {django.get_version()}"
    if importlib.util.find_spec("django_tasks_db") is None:
        return 'django-tasks-db is not installed: pip install -e ".[test]" (Python 3.12+)'
    return None


_WORKER = """
import sys

import django

django.setup()
from django.core.management import call_command

from benchmarks.benchapp.django_tasks import register_tasks_receiver

# The receiver the cases register in their process, known here by the same name.
register_tasks_receiver(sys.argv[1])
call_command(
    "db_worker",
    queue_name=sys.argv[1],
    interval=0.01,
    startup_delay=False,
    reload=False,
    verbosity=0,
)
"""
"""What a worker process runs: django-tasks-db's ``db_worker``, with the cases' receiver."""


class _Workers:
    """The run's ``db_worker`` processes, one per database, started on first use and stopped
    when the run ends."""

    processes: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def ensure(cls, alias: str) -> None:
        process = cls.processes.get(alias)
        if process is not None and process.poll() is None:
            return
        command = [sys.executable, "-c", _WORKER, WORK_QUEUE]
        cls.processes[alias] = children.start(
            command,
            {**os.environ, "PYTHONPATH": str(ROOT), "DDE_BENCH_TASKS_DATABASE": alias},
        )

    @classmethod
    def stop(cls) -> None:
        for process in cls.processes.values():
            children.stop(process)
        cls.processes = {}

    @classmethod
    def wait(cls, alias: str, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done():
            if cls.processes[alias].poll() is not None:
                raise RuntimeError(f"The db_worker of {alias} exited while waiting for {what}.")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for {what}.")
            time.sleep(0.01)


@contextmanager
def enqueued_tasks(bench: Bench, queue: str = QUEUE) -> Iterator[None]:
    """Within the block, tasks go to the case's database; after it, the case checks there are
    ``n`` on ``queue`` and deletes them."""
    from django_tasks_db.models import DBTaskResult

    tasks = DBTaskResult.objects.using(bench.alias).filter(queue_name=queue)
    with tasks_database(bench.alias):
        yield
    bench.expect("tasks enqueued", tasks.count(), bench.n)
    tasks.delete()


def _raw_rows_with_task(bench: Bench, queue: str) -> None:
    from ..benchapp.django_tasks import noop, touch

    task = (touch if queue == WORK_QUEUE else noop).using(queue_name=queue)
    rows = RawEvent.objects.using(bench.alias)
    for i in range(bench.n):
        with transaction.atomic(using=bench.alias):
            row = rows.create(
                event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=timezone.now()
            )
            transaction.on_commit(
                partial(task.enqueue, str(row.pk), bench.alias), using=bench.alias
            )


@contextmanager
def tasks_receiver(queue: str) -> Iterator[None]:
    """The block's only receiver of ``OrderPlaced``: the no-op, through django.tasks."""
    from ..benchapp.django_tasks import register_tasks_receiver

    with registry.isolated(), override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        register_tasks_receiver(queue)
        yield


@rate_case(
    "B8",
    "B1 + task.enqueue() on commit, django-tasks-db (no worker)",
    floor="B1",
    unit="rows/s",
    needs=tasks_unavailable,
)
def raw_create_enqueue_on_commit(bench: Bench) -> None:
    with enqueued_tasks(bench):
        with bench.timed():
            _raw_rows_with_task(bench, QUEUE)
        bench.expect("B8 rows", RawEvent.objects.using(bench.alias).count(), bench.n)


@rate_case(
    "tasks-publish",
    "publish() 1 event, 1 django.tasks receiver, one per atomic() (no worker)",
    floor="B8",
    target=Target(postgresql=0.9, sqlite=0.9),
    needs=tasks_unavailable,
)
def tasks_publish(bench: Bench) -> None:
    with tasks_receiver(QUEUE), enqueued_tasks(bench), bench.timed():
        publish_orders(bench.n, bench.alias)
    bench.expect("deliveries", Delivery.objects.using(bench.alias).count(), bench.n)


@rate_case(
    "B9",
    "B8 with a db_worker that loads the row, runs a no-op and updates it",
    floor="B8",
    unit="rows/s",
    needs=tasks_unavailable,
)
def raw_tasks_end_to_end(bench: Bench) -> None:
    _Workers.ensure(bench.alias)
    handled = RawEvent.objects.using(bench.alias).filter(handled_at__isnull=False)
    with enqueued_tasks(bench, WORK_QUEUE):
        with bench.timed():
            _raw_rows_with_task(bench, WORK_QUEUE)
            _Workers.wait(bench.alias, "B9's rows", lambda: handled.count() >= bench.n)
        bench.expect("B9 rows handled", handled.count(), bench.n)


@rate_case(
    "tasks-e2e",
    "django.tasks end to end: publish(), commit, a db_worker runs the receiver, marks it delivered",
    floor="B9",
    target=Target(postgresql=0.9, sqlite=0.9),
    needs=tasks_unavailable,
)
def tasks_end_to_end(bench: Bench) -> None:
    _Workers.ensure(bench.alias)
    delivered = Delivery.objects.using(bench.alias).filter(state=DeliveryState.DELIVERED)
    with tasks_receiver(WORK_QUEUE), enqueued_tasks(bench, WORK_QUEUE):
        with bench.timed():
            publish_orders(bench.n, bench.alias)
            _Workers.wait(bench.alias, "the deliveries", lambda: delivered.count() >= bench.n)
        bench.expect("deliveries delivered", delivered.count(), bench.n)
