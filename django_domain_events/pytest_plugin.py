"""pytest fixtures for projects using django_domain_events (registered via the ``pytest11``
entry point, so they are available once the package is installed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_domain_events.declaration.registry import Registry
    from django_domain_events.testing import CapturedEvents, DrainResult


@pytest.fixture
def domain_events() -> Iterator[CapturedEvents]:
    """Every event published during the test, with ``assert_published()`` helpers."""
    from django_domain_events.testing import capture_events

    with capture_events() as captured:
        yield captured


@pytest.fixture
def drain_events() -> Callable[..., DrainResult]:
    """``drain()``: run owed deliveries to completion (needs the ``db`` fixture or mark)."""
    from django_domain_events.testing import drain

    return drain


@pytest.fixture
def receiver_registry() -> Iterator[Registry]:
    """An empty receiver registry for the test; the project's receivers come back afterwards."""
    from django_domain_events.declaration.registry import registry

    with registry.isolated() as isolated:
        yield isolated


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "domain_events: test uses the django_domain_events fixtures")
