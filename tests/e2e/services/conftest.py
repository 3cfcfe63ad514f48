"""Fixtures of the tests of two projects: the broker (a parameter), both projects' databases
and the processes of one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.services.two_projects import (
    BROKERS,
    Broker,
    Services,
    Templates,
    migrated_templates,
)
from tests.tcp_proxy import TCPProxy


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    made: Broker = request.param()
    made.create()
    yield made
    made.delete()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    with migrated_templates(tmp_path_factory.mktemp("two-projects")) as made:
        yield made


@pytest.fixture
def services(broker: Broker, templates: Templates, tmp_path: Path) -> Iterator[Services]:
    shop, accounting = templates.copy(tmp_path)
    proxy = TCPProxy(broker.host, broker.port)
    made = Services(broker, shop, accounting, proxy, tmp_path / "processes")
    try:
        yield made
    finally:
        for process in made.processes:
            process.kill()
        proxy.close()
        broker.delete_queue()
