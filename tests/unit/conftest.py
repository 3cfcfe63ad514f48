"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_domain_events.testing import disposable_event_classes
from tests.unit.recording import RecordingDispatcher


@pytest.fixture(autouse=True)
def _empty_recording_dispatcher() -> None:
    RecordingDispatcher.calls = []


@pytest.fixture
def disposable_classes() -> Iterator[None]:
    """Retire the event classes the test defines, so they never reach another test's checks
    or lookups."""
    with disposable_event_classes():
        yield
