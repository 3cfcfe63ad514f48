"""Fixtures of the Celery integration tests: real brokers and real ``celery worker`` processes.

Each test gets a queue of its own, so a message a failed test leaves behind never reaches
another test, and a worker (prefork, two processes) that consumes only that queue and uses the
test database. The brokers come from ``DOMAIN_EVENTS_TEST_REDIS_URL`` and
``DOMAIN_EVENTS_TEST_RABBITMQ_URL``; one that is down skips its tests, or fails them under
``DOMAIN_EVENTS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from celery import Celery, _state
from django.db import connection
from django.test import override_settings

from tests import settings as test_settings
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


@dataclass(frozen=True)
class Broker:
    """A broker the tests run against."""

    name: str
    url: str
    how_to_start: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (6379 if self.name == "redis" else 5672)

    def with_port(self, port: int) -> str:
        """This broker's URL with another port."""
        parts = urlsplit(self.url)
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        return parts._replace(netloc=f"{netloc}:{port}").geturl()

    @property
    def transport_options(self) -> dict[str, object]:
        return dict(test_settings.REDIS_TRANSPORT_OPTIONS) if self.name == "redis" else {}


BROKERS = {
    "redis": Broker(
        "redis",
        # Database 15: the short visibility timeout of the test worker applies to every queue
        # of its Redis database.
        os.environ.get("DOMAIN_EVENTS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "service redis-server start",
    ),
    "rabbitmq": Broker(
        "rabbitmq",
        os.environ.get("DOMAIN_EVENTS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"),
        "service rabbitmq-server start",
    ),
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn."""
    found = BROKERS[request.param]
    require_service(found.name, found.host, found.port, found.how_to_start)
    return found


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"dde-test-{uuid.uuid4().hex[:12]}"


def make_app(broker_url: str, transport_options: dict[str, object]) -> Celery:
    """A Celery app configured from the Django settings, as a project's is, on ``broker_url``.

    It is never Celery's default app (no Django fixup), so it cannot leak into other tests.
    """
    app = Celery("dde-tests", set_as_current=False, fixups=[])
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=broker_url, broker_transport_options=transport_options)
    return app


@contextlib.contextmanager
def current_celery_app(app: Celery, queue: str) -> Iterator[Celery]:
    """Make ``app`` Celery's current app in this thread, where publishing dispatches, with
    ``DOMAIN_EVENTS["CELERY_APP"]`` unset as in most projects; send to ``queue`` by default."""
    previous = _state._tls.current_app
    app.set_current()
    try:
        with override_settings(DOMAIN_EVENTS={"DISPATCHER": "sync", "CELERY_QUEUE": queue}):
            yield app
    finally:
        _state._set_current_app(previous)
        app.close()


def delete_queue(app: Celery, name: str) -> None:
    """Delete a queue and its bindings from the broker, so test runs leave nothing behind."""
    with contextlib.suppress(Exception), app.connection_for_write() as broker_connection:
        # Declared first: kombu's Redis transport deletes only the bindings it knows of.
        bound = app.amqp.queues[name].bind(broker_connection.default_channel)
        bound.declare()
        bound.delete()


@pytest.fixture
def celery_app(broker: Broker, queue: str) -> Iterator[Celery]:
    """The test process's Celery app on ``broker``; the test's queue is deleted after it."""
    with current_celery_app(make_app(broker.url, broker.transport_options), queue) as app:
        try:
            yield app
        finally:
            delete_queue(app, queue)


class Worker:
    """A ``celery -A tests.celery_app worker`` process consuming one queue."""

    def __init__(self, broker: Broker, queue: str, directory: Path) -> None:
        self.broker = broker
        self.queue = queue
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, purge: bool = False) -> None:
        """Start the worker and wait until it consumes its queue."""
        self.starts += 1
        log = self.directory / f"worker-{self.starts}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            f"--queues={self.queue}",
            f"--hostname={self.queue}-{self.starts}@%h",
            "--loglevel=INFO",
            f"--logfile={log}",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        if purge:
            command.append("--purge")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DOMAIN_EVENTS_TEST_DB": "postgres",
            # pytest-django's test database, which this settings_dict now names.
            "DOMAIN_EVENTS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
            "DOMAIN_EVENTS_TEST_BROKER_URL": self.broker.url,
            "DOMAIN_EVENTS_TEST_CELERY_QUEUE": self.queue,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        with open(self.directory / f"worker-{self.starts}.out", "wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group, so kill() reaches the pool processes too.
                start_new_session=True,
            )
        process = self.process
        wait_for(
            lambda: process.poll() is not None or " ready." in self.log(),
            "the worker to start",
            worker=self,
        )
        if process.poll() is not None:
            pytest.fail(f"The Celery worker exited with status {process.returncode}:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as the OOM killer or a lost host would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the worker cleanly (a cold shutdown, which on Redis still puts the tasks it
        reserved back in their queue), killing it if that takes too long."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.kill()

    def log(self) -> str:
        """Everything the worker has written so far, in every start."""
        parts = []
        for path in sorted(self.directory.glob("worker-*.*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)


@pytest.fixture
def worker(
    broker: Broker, queue: str, celery_app: Celery, transactional_db: None, tmp_path: Path
) -> Iterator[Worker]:
    """A running worker on ``broker`` consuming ``queue``, with the test database."""
    started = Worker(broker, queue, tmp_path)
    started.start(purge=True)
    try:
        yield started
    finally:
        started.stop()


def wait_for(
    condition: Callable[[], T], what: str, *, timeout: float = 30, worker: Worker | None = None
) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail after
    ``timeout`` seconds with the worker's log."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            log = f"\nWorker log:\n{worker.log()}" if worker is not None else ""
            pytest.fail(f"Gave up after {timeout:g} s waiting for {what}.{log}")
        time.sleep(0.05)
