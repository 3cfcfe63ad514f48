"""Fixtures of the Celery integration tests: each real broker in turn (``tests/brokers.py``), a
queue of the test's own, and a real ``celery worker`` (prefork, two processes) that consumes
only that queue and uses the test database (``tests/processes.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.brokers import Broker, broker, current_celery_app, delete_queue, make_app, queue
from tests.processes import CeleryWorker

__all__ = ["broker", "celery_app", "queue", "worker"]


@pytest.fixture
def celery_app(broker: Broker, queue: str) -> Iterator[Celery]:
    """The test process's Celery app on ``broker``; the test's queue is deleted after it."""
    with current_celery_app(make_app(broker.url, broker.transport_options), queue) as app:
        try:
            yield app
        finally:
            delete_queue(app, queue)


@pytest.fixture
def worker(
    broker: Broker, queue: str, celery_app: Celery, transactional_db: None, tmp_path: Path
) -> Iterator[CeleryWorker]:
    """A running worker on ``broker`` consuming ``queue``, with the test database."""
    started = CeleryWorker(broker.url, queue, tmp_path)
    started.start(purge=True)
    try:
        yield started
    finally:
        started.stop()
