"""The Celery dispatcher on Redis, beside the floors a project would write by hand.

- B5: B1 + ``task.delay_on_commit()``: the floor for publishing to Celery (no worker reads the
  queue; only the sending is measured).
- B6: B5 with a real prefork worker that loads the row, does nothing and updates it: the floor
  for Celery end to end, timed until the last row is updated.
- Our cases: ``publish()`` with a Celery receiver (against B5); the same with the worker running the
  deliveries (against B6); and commit → receiver start latency over unloaded publishes, and
  over the same publishes while another process publishes a steady load to the same worker
  (``benchmarks/load.py``).

The worker (``celery -A benchmarks.celery_app worker``, prefork, 2 processes, connections kept
between tasks) is started once per run and serves both databases: each task names its alias.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events import publish
from django_domain_events.declaration.registry import registry
from django_domain_events.models import Delivery, DeliveryState

from .. import children, load
from ..benchapp.events import RAW_EVENT_TYPE, TOTAL, OrderPlaced, publish_orders, raw_payload
from ..benchapp.models import RawEvent

# The project's Celery app, created (and so Celery's current app) before any task is sent.
from ..celery_app import app as celery_app
from ..harness import Bench, Target, latency_case, rate_case

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:8]
IDLE_QUEUE = f"dde-bench-idle-{RUN}"
"""No worker reads it: the publish cases' tasks wait there and are purged after each run."""
WORK_QUEUE = f"dde-bench-work-{RUN}"
"""The worker's queue."""
WAIT_SECONDS = 300
REDIS_START = "redis-server --daemonize yes"


def redis_unavailable() -> str | None:
    """Why the broker cannot be used, or None."""
    url = urlsplit(settings.CELERY_BROKER_URL)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError:
        return f"Redis not reachable at {host}:{port}; start it with: {REDIS_START}"


def purge(queue: str) -> None:
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


class _Worker:
    """The run's prefork worker, started on first use and stopped when the run ends."""

    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def ensure(cls) -> None:
        if cls.process is not None and cls.process.poll() is None:
            return
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            f"--queues={WORK_QUEUE}",
            f"--hostname={WORK_QUEUE}@%h",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        cls.process = children.start(command, {**os.environ, "PYTHONPATH": str(ROOT)})

    @classmethod
    def stop(cls) -> None:
        if cls.process is not None:
            children.stop(cls.process)
        cls.process = None


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if _Worker.process is not None and _Worker.process.poll() is not None:
            raise RuntimeError(f"The Celery worker exited while waiting for {what}.")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for {what}.")
        time.sleep(0.01)


@contextmanager
def celery_receiver(queue: str) -> Iterator[None]:
    """The block's only receiver of ``OrderPlaced``: the worker's no-op, through Celery."""
    from ..benchapp.tasks import register_celery_receiver

    with registry.isolated(), override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        register_celery_receiver(queue)
        yield


def _raw_rows_with_task(bench: Bench, queue: str) -> None:
    from ..benchapp.tasks import noop, touch

    task = touch if queue == WORK_QUEUE else noop
    rows = RawEvent.objects.using(bench.alias)
    for i in range(bench.n):
        with transaction.atomic(using=bench.alias):
            row = rows.create(
                event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=timezone.now()
            )
            # What task.delay_on_commit() does, on this alias and to this queue.
            transaction.on_commit(
                partial(task.apply_async, args=[str(row.pk), bench.alias], queue=queue),
                using=bench.alias,
            )


@rate_case(
    "B5",
    "B1 + task.delay_on_commit() to Redis (no worker)",
    floor="B1",
    unit="rows/s",
    needs=redis_unavailable,
)
def raw_create_delay_on_commit(bench: Bench) -> None:
    with bench.timed():
        _raw_rows_with_task(bench, IDLE_QUEUE)
    purge(IDLE_QUEUE)
    bench.expect("B5 rows", RawEvent.objects.using(bench.alias).count(), bench.n)


@rate_case(
    "celery-publish",
    "publish() 1 event, 1 Celery receiver, one per atomic() (no worker)",
    floor="B5",
    target=Target(postgresql=0.9, sqlite=0.9),
    needs=redis_unavailable,
)
def celery_publish(bench: Bench) -> None:
    with celery_receiver(IDLE_QUEUE), bench.timed():
        publish_orders(bench.n, bench.alias)
    purge(IDLE_QUEUE)
    bench.expect("deliveries", Delivery.objects.using(bench.alias).count(), bench.n)


@rate_case(
    "B6",
    "B5 with a worker that loads the row, runs a no-op and updates it",
    floor="B5",
    unit="rows/s",
    needs=redis_unavailable,
)
def raw_celery_end_to_end(bench: Bench) -> None:
    _Worker.ensure()
    handled = RawEvent.objects.using(bench.alias).filter(handled_at__isnull=False)
    with bench.timed():
        _raw_rows_with_task(bench, WORK_QUEUE)
        _wait("B6's rows", lambda: handled.count() >= bench.n)
    bench.expect("B6 rows handled", handled.count(), bench.n)


@rate_case(
    "celery-e2e",
    "Celery end to end: publish(), commit, a worker runs the receiver, marks it delivered",
    floor="B6",
    target=Target(postgresql=0.9, sqlite=0.9),
    needs=redis_unavailable,
)
def celery_end_to_end(bench: Bench) -> None:
    _Worker.ensure()
    delivered = Delivery.objects.using(bench.alias).filter(state=DeliveryState.DELIVERED)
    with celery_receiver(WORK_QUEUE), bench.timed():
        publish_orders(bench.n, bench.alias)
        _wait("the deliveries", lambda: delivered.count() >= bench.n)
    bench.expect("deliveries delivered", delivered.count(), bench.n)


@latency_case(
    "celery-latency",
    "Celery: commit → receiver start, unloaded publishes one at a time",
    p50_ms=5,
    p99_ms=10,
    needs=redis_unavailable,
)
def celery_latency(bench: Bench) -> list[float]:
    _Worker.ensure()
    return _latencies(bench)


@latency_case(
    "celery-latency-loaded",
    f"celery-latency while another process publishes {load.RATE:g}/s to the same worker",
    p50_ms=5,
    p99_ms=10,
    needs=redis_unavailable,
    scale=5,
    beside="celery-latency",
)
def celery_latency_loaded(bench: Bench) -> list[float]:
    _Worker.ensure()
    with load.steady_load(bench.alias, "celery", queue=WORK_QUEUE):
        return _latencies(bench)


def _latencies(bench: Bench) -> list[float]:
    """Commit → receiver start of ``bench.n`` publishes made one at a time, each waited for."""
    alias = bench.alias
    committed: dict[uuid.UUID, float] = {}
    with celery_receiver(WORK_QUEUE):
        # The worker's first tasks on this database open its connections: not measured.
        for i in range(10):
            publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
        delivered = Delivery.objects.using(alias).filter(state=DeliveryState.DELIVERED)
        _wait("the warm-up deliveries", lambda: delivered.count() >= 10)
        for i in range(bench.n):
            stamp: list[float] = []
            with transaction.atomic(using=alias):
                # Registered before publish()'s own hook, so it runs first, just after COMMIT.
                transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()), using=alias)
                event_id = publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
            committed[event_id] = stamp[0]
            _wait(
                "a delivery", lambda event_id=event_id: delivered.filter(event_id=event_id).exists()
            )
            time.sleep(0.005)
    rows = delivered.filter(event_id__in=list(committed)).values_list("event_id", "delivered_at")
    return [(at.timestamp() - committed[event_id]) * 1000 for event_id, at in rows]
