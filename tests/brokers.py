"""The real brokers the Celery tests run against, and fixtures a conftest imports to use them.

The brokers come from ``DOMAIN_EVENTS_TEST_REDIS_URL`` and ``DOMAIN_EVENTS_TEST_RABBITMQ_URL``;
one that is down skips its tests, or fails them under ``DOMAIN_EVENTS_REQUIRE_SERVICES=1``.
Each test gets a queue of its own, so a message a failed test leaves behind never reaches
another test.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from celery import Celery, _state
from django.test import override_settings

from tests import settings as test_settings
from tests.conftest import require_service


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

    def require(self) -> None:
        """Skip the test if this broker is down (fail it under REQUIRE_SERVICES)."""
        require_service(self.name, self.host, self.port, self.how_to_start)


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


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn."""
    found = BROKERS[request.param]
    found.require()
    return found


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"dde-test-{uuid.uuid4().hex[:12]}"
