"""Shared test configuration: service availability and database selection."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.db import connection

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

REQUIRE_SERVICES = os.environ.get("DOMAIN_EVENTS_REQUIRE_SERVICES") == "1"


def service_reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int, how_to_start: str) -> None:
    """Skip the test when a service is down; fail instead under DOMAIN_EVENTS_REQUIRE_SERVICES=1."""
    if service_reachable(host, port):
        return
    message = f"{name} not reachable at {host}:{port}; start it with: {how_to_start}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked "postgres" exercise PostgreSQL-only behaviour (row locks between real
    # connections); the test command runs the suite once per database, so on SQLite they are
    # not applicable rather than missing a service.
    if os.environ.get("DOMAIN_EVENTS_TEST_DB", "sqlite") != "postgres":
        skip = pytest.mark.skip(
            reason="PostgreSQL-only; runs in the postgres pass of scripts/test.py"
        )
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def vendor() -> str:
    """The database vendor of this run: 'sqlite' or 'postgresql'."""
    return connection.vendor


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished in this process during the test, through the SDK of
    ``tests/tracing_sdk.py``."""
    from tests.tracing_sdk import recorded_spans

    exporter = recorded_spans()
    yield exporter
    exporter.clear()
