"""Shared test configuration: service availability and database selection."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
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


TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")
"""The folders under tests/ that hold tests, one per tier (the others hold what they import)."""
SERVER_DATABASES = ("postgres", "mariadb")
"""Values of DOMAIN_EVENTS_TEST_DB that name a database server, as tests marked server_db need."""
NOT_UNIT = ("postgres", "server_db", "services", "e2e", "browser")
"""Markers a test in tests/unit may not carry: unit tests run on SQLite, with no network."""
E2E_ONLY = ("e2e", "browser")
"""Markers only tests in tests/e2e carry, and that every test there carries one of."""
TIER_RULES = (
    "tests/unit: SQLite only, no network, none of the markers "
    f"{', '.join(NOT_UNIT)}; tests/integration: real database servers, brokers and workers; "
    f"tests/e2e: real processes stopped by signals and the browser, each marked "
    f"{' or '.join(E2E_ONLY)}."
)


def tier_of(item: pytest.Item) -> str | None:
    """The tier folder ``item`` lives in, or None for a test outside every tier folder."""
    try:
        relative = item.path.resolve().relative_to(TESTS)
    except ValueError:
        return None
    return relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] in TIERS else None


def misplaced(item: pytest.Item) -> str | None:
    """Why ``item`` is in the wrong tier folder for its markers, or None if it is not."""
    markers = {marker.name for marker in item.iter_markers()}
    tier = tier_of(item)
    if tier is None:
        return f"is in no tier folder (put it under tests/{'|'.join(TIERS)})"
    if tier == "unit" and markers & set(NOT_UNIT):
        found = ", ".join(sorted(markers & set(NOT_UNIT)))
        return f"is a unit test marked {found}: move it to tests/integration or tests/e2e"
    if tier != "e2e" and markers & set(E2E_ONLY):
        found = ", ".join(sorted(markers & set(E2E_ONLY)))
        return f"is marked {found} outside tests/e2e: move it there"
    if tier == "e2e" and not markers & set(E2E_ONLY):
        return f"is in tests/e2e without the marker {' or '.join(E2E_ONLY)}"
    return None


MISPLACED = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Each folder is a tier, which its markers must match, so that a run of tests/unit never
    # needs a service and the e2e tests can be run, or left out, as a whole. A misplaced test
    # fails (below) rather than aborting the collection, which pytest-xdist reports as a
    # crash that hides the message.
    for item in items:
        if item.path.resolve().is_relative_to(TESTS) and (reason := misplaced(item)):
            item.stash[MISPLACED] = reason

    # Tests marked "server_db" need a database that several connections and processes share
    # (row locks between them, real relays and workers); those marked "postgres" need
    # PostgreSQL itself. The test command runs the suite once per database, so elsewhere they
    # are not applicable rather than missing a service.
    database = os.environ.get("DOMAIN_EVENTS_TEST_DB", "sqlite")
    skips = {
        "postgres": None
        if database == "postgres"
        else pytest.mark.skip(
            reason="PostgreSQL-only; runs in the postgres pass of scripts/test.py"
        ),
        "server_db": None
        if database in SERVER_DATABASES
        else pytest.mark.skip(
            reason="needs a database server; runs in the postgres and mariadb passes of "
            "scripts/test.py"
        ),
    }
    for item in items:
        if MISPLACED in item.stash:
            continue
        for marker, skip in skips.items():
            if skip is not None and item.get_closest_marker(marker) is not None:
                item.add_marker(skip)
                break


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if MISPLACED in item.stash:
        pytest.fail(
            f"{item.nodeid} {item.stash[MISPLACED]}.\nThe rule: {TIER_RULES}", pytrace=False
        )


@pytest.fixture(autouse=True)
def _no_broker_cooldown() -> Iterator[None]:
    """End the Celery dispatcher's broker cool-downs after each test, so a test whose broker
    failed never keeps the next one from sending (without importing Celery for tests that
    never did)."""
    yield
    cooldown = sys.modules.get("django_domain_events.dispatchers.celery.cooldown")
    if cooldown is not None:
        cooldown.clear()


@pytest.fixture
def vendor() -> str:
    """The database vendor of this run: 'sqlite', 'postgresql' or 'mysql' (MariaDB)."""
    return connection.vendor


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished in this process during the test, through the SDK of
    ``tests/tracing_sdk.py``."""
    from tests.tracing_sdk import recorded_spans

    exporter = recorded_spans()
    yield exporter
    exporter.clear()
