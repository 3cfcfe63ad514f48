"""Fixtures of the wildcard tests: the Celery tests' brokers and queues, and a worker process
that has the wildcard receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from django_domain_events.declaration.registry import Registry
from tests.brokers import Broker, broker, current_celery_app, delete_queue, make_app, queue
from tests.processes import CeleryWorker

from .receivers import register

__all__ = ["broker", "queue"]

SETTINGS = "tests.integration.wildcards.settings"


@pytest.fixture
def celery_app(broker: Broker, queue: str) -> Iterator[Celery]:
    """The test process's Celery app on ``broker``; the test's queue is deleted after it."""
    with current_celery_app(make_app(broker.url, broker.transport_options), queue) as app:
        try:
            yield app
        finally:
            delete_queue(app, queue)


@pytest.fixture
def wildcard_receivers(receiver_registry: Registry) -> Registry:
    """This process's registry with the receivers the worker has."""
    register()
    return receiver_registry


@pytest.fixture
def worker(
    broker: Broker, queue: str, celery_app: Celery, transactional_db: None, tmp_path: Path
) -> Iterator[CeleryWorker]:
    """A running worker on ``broker`` consuming ``queue``, with the wildcard receivers."""
    started = CeleryWorker(broker.url, queue, tmp_path, settings=SETTINGS)
    started.start(purge=True)
    try:
        yield started
    finally:
        started.stop()
