"""Fixtures of the ordering tests: the Celery tests' brokers, worker processes that load the
ordering receivers, management commands run as processes, and a wait that says where the
undelivered deliveries stand when it gives up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from tests.integration.celery import conftest as celery_fixtures
from tests.integration.celery.conftest import (
    Broker,
    Worker,
    current_celery_app,
    delete_queue,
    make_app,
    wait_for,
)

from .receivers import register

# Its checks fail with pytest's detailed messages, as a test module's would.
pytest.register_assert_rewrite("tests.integration.ordering.lines")

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = "tests.integration.ordering.settings"

# The Celery tests' fixtures: each broker in turn, and a queue of the test's own.
broker = celery_fixtures.broker
queue = celery_fixtures.queue


def process_env(broker_url: str, queue: str, domain_events: dict[str, Any]) -> dict[str, str]:
    """The environment of a worker or command process: the ordering settings, the test
    database, ``broker_url`` and ``queue``, and ``domain_events`` added to ``DOMAIN_EVENTS``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DOMAIN_EVENTS_TEST_DB": "postgres",
        # pytest-django's test database, which this settings_dict now names.
        "DOMAIN_EVENTS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "DOMAIN_EVENTS_TEST_BROKER_URL": broker_url,
        "DOMAIN_EVENTS_TEST_CELERY_QUEUE": queue,
        "DOMAIN_EVENTS_TEST_SETTINGS": json.dumps(domain_events),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


class OrderingWorker(Worker):
    """A ``celery worker`` (prefork, one pool process) that has the ordering receivers; several
    of them consume one queue."""

    def __init__(self, broker: Broker, queue: str, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(broker, queue, directory)
        self.name = name

    def launch(self) -> None:
        """Start the worker process, without waiting for it to consume (see ``ready()``)."""
        self.starts += 1
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            f"--queues={self.queue}",
            f"--hostname={self.name}-{self.starts}-{self.queue}@%h",
            "--loglevel=INFO",
            f"--logfile={self.directory / f'worker-{self.starts}.log'}",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        with open(self.directory / f"worker-{self.starts}.out", "wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=process_env(self.broker.url, self.queue, {}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group, so kill() reaches the pool process too.
                start_new_session=True,
            )

    def ready(self) -> bool:
        """Whether the worker consumes its queue; fails the test if it has exited."""
        process = self.process
        assert process is not None
        if process.poll() is not None:
            pytest.fail(
                f"Celery worker {self.name} exited with {process.returncode}:\n{self.log()}"
            )
        return " ready." in self.log()

    def start(self, *, purge: bool = False) -> None:
        """Start the worker and wait until it consumes its queue (``purge`` is not needed: each
        test has a queue of its own)."""
        self.launch()
        wait_for(self.ready, f"worker {self.name} to start", timeout=60, worker=self)


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
) -> Iterator[Callable[[int, Broker], list[OrderingWorker]]]:
    """``start_workers(count, broker)`` starts ``count`` workers on ``broker`` consuming the
    test's queue, and waits until all consume; they are stopped at the end of the test, before
    the queue is deleted."""
    started: list[OrderingWorker] = []

    def run(count: int, broker: Broker) -> list[OrderingWorker]:
        workers = [
            OrderingWorker(broker, queue, tmp_path / f"w{len(started) + n}", f"w{len(started) + n}")
            for n in range(count)
        ]
        started.extend(workers)
        for worker in workers:
            worker.launch()
        for worker in workers:
            wait_for(worker.ready, f"worker {worker.name} to start", timeout=60, worker=worker)
        return workers

    try:
        yield run
    finally:
        stop_all(started)


def stop_all(workers: Sequence[OrderingWorker]) -> None:
    """Stop ``workers`` together (a cold shutdown each, which gives the tasks they reserved
    back to the broker), so none goes on working while another shuts down."""
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            os.kill(worker.process.pid, signal.SIGQUIT)
    for worker in workers:
        worker.stop()


def manage(
    *args: str, broker_url: str, queue: str, domain_events: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m django <args>`` with the ordering settings, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=process_env(broker_url, queue, domain_events or {}),
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


def wait_until(
    condition: Callable[[], object],
    what: str,
    *,
    timeout: float = 120,
    workers: Sequence[OrderingWorker] = (),
) -> None:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds
    saying where the undelivered deliveries stand, with the end of each worker's log."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name}\n{w.log()[-3000:]}" for w in workers)
            pytest.fail(
                f"Gave up after {timeout:g} s waiting for {what}.\n{where_they_stand()}\n{logs}"
            )
        time.sleep(0.25)


def wait_until_delivered(
    expected: int,
    *,
    timeout: float = 240,
    workers: Sequence[OrderingWorker] = (),
    each_poll: Callable[[], object] | None = None,
) -> None:
    """Poll until ``expected`` deliveries exist, all delivered, calling ``each_poll`` on each
    round; fail after ``timeout`` seconds as ``wait_until()`` does."""

    def delivered() -> bool:
        if each_poll is not None:
            each_poll()
        done = Delivery.objects.filter(state=DeliveryState.DELIVERED).count()
        return done == expected == Delivery.objects.count()

    wait_until(
        delivered, f"{expected} deliveries to be delivered", timeout=timeout, workers=workers
    )
