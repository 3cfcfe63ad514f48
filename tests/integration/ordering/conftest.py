"""Fixtures of the ordering tests: the Celery tests' brokers, worker processes that load the
ordering receivers, management commands run as processes, and a wait that says where the
undelivered deliveries stand when it gives up."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.utils import timezone

from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from tests.brokers import Broker, broker, current_celery_app, delete_queue, make_app, queue
from tests.processes import ROOT, CeleryWorker, process_env, stop_workers, wait_until

from .receivers import register

__all__ = ["broker", "queue"]

# Its checks fail with pytest's detailed messages, as a test module's would.
pytest.register_assert_rewrite("tests.integration.ordering.lines")

SETTINGS = "tests.integration.ordering.settings"


def ordering_env(domain_events: dict[str, Any], **extra: str) -> dict[str, str]:
    """The environment of a worker or command process: the ordering settings on the test
    database, with ``domain_events`` added to ``DOMAIN_EVENTS``."""
    return process_env(SETTINGS, DOMAIN_EVENTS_TEST_SETTINGS=json.dumps(domain_events), **extra)


def ordering_worker(broker: Broker, queue: str, directory: Path, name: str) -> CeleryWorker:
    """A worker (one pool process) that has the ordering receivers; several of them consume
    one queue."""
    return CeleryWorker(
        broker.url,
        queue,
        directory,
        name=name,
        concurrency=1,
        settings=SETTINGS,
        env={"DOMAIN_EVENTS_TEST_SETTINGS": "{}"},
    )


@pytest.fixture
def celery_app(broker: Broker, queue: str) -> Iterator[Celery]:
    """The test process's Celery app on ``broker``, without a result backend as the workers'
    (a result row per task only slows them down); the test's queue is deleted after it."""
    app = make_app(broker.url, broker.transport_options)
    app.conf.result_backend = "disabled"
    with current_celery_app(app, queue):
        try:
            yield app
        finally:
            delete_queue(app, queue)


@pytest.fixture
def stepped_receivers(receiver_registry: Registry) -> Registry:
    """This process's registry with the receivers the workers have."""
    register()
    return receiver_registry


@pytest.fixture
def start_workers(
    celery_app: Celery, queue: str, transactional_db: None, tmp_path: Path
) -> Iterator[Callable[[int, Broker], list[CeleryWorker]]]:
    """``start_workers(count, broker)`` starts ``count`` workers on ``broker`` consuming the
    test's queue, and waits until all consume; they are stopped at the end of the test, before
    the queue is deleted."""
    started: list[CeleryWorker] = []

    def run(count: int, broker: Broker) -> list[CeleryWorker]:
        names = [f"w{len(started) + n}" for n in range(count)]
        workers = [ordering_worker(broker, queue, tmp_path / name, name) for name in names]
        started.extend(workers)
        for worker in workers:
            worker.launch()
        for worker in workers:
            wait_until(
                worker.ready, f"Celery worker {worker.name} to start", timeout=60, report=worker.log
            )
        return workers

    try:
        yield run
    finally:
        stop_workers(started)


def manage(
    *args: str, broker_url: str, queue: str, domain_events: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m django <args>`` with the ordering settings, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=ordering_env(
            domain_events or {},
            DOMAIN_EVENTS_TEST_BROKER_URL=broker_url,
            DOMAIN_EVENTS_TEST_CELERY_QUEUE=queue,
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def where_they_stand(limit: int = 20) -> str:
    """The deliveries not delivered, by state, and the first ``limit`` of them in detail."""
    left = Delivery.objects.exclude(state=DeliveryState.DELIVERED)
    by_state = Counter(left.values_list("state", flat=True))
    rows = left.order_by("receiver", "ordering_key", "ordering_seq").values_list(
        "receiver",
        "ordering_key",
        "ordering_seq",
        "state",
        "attempts",
        "next_attempt_at",
        "dispatched_at",
        "last_error",
    )[:limit]
    lines = [
        f"not delivered: {dict(by_state) or 'none'}; database time {timezone.now().isoformat()}"
    ]
    lines += [
        f"  {receiver} key={key!r} seq={seq} {state} attempts={attempts} "
        f"next_attempt_at={next_at} dispatched_at={dispatched_at} error={error[:80]!r}"
        for receiver, key, seq, state, attempts, next_at, dispatched_at, error in rows
    ]
    return "\n".join(lines)


def report_on(workers: Sequence[CeleryWorker]) -> Callable[[], str]:
    """A ``report`` for ``wait_until()``: where the undelivered deliveries stand, and the end
    of each worker's log."""

    def report() -> str:
        logs = "\n".join(f"--- {w.name}\n{w.log()[-3000:]}" for w in workers)
        return f"{where_they_stand()}\n{logs}"

    return report


def wait_until_delivered(
    expected: int,
    *,
    timeout: float = 240,
    workers: Sequence[CeleryWorker] = (),
    each_poll: Callable[[], object] | None = None,
) -> None:
    """Wait until ``expected`` deliveries exist, all delivered, calling ``each_poll`` on each
    round; fail after ``timeout`` seconds with ``report_on(workers)``."""

    def delivered() -> bool:
        if each_poll is not None:
            each_poll()
        done = Delivery.objects.filter(state=DeliveryState.DELIVERED).count()
        return done == expected == Delivery.objects.count()

    wait_until(
        delivered,
        f"{expected} deliveries to be delivered",
        timeout=timeout,
        interval=0.25,
        report=report_on(workers),
    )
