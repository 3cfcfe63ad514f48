"""A handlers module written for the in-house event backend, registered the old way with
``register_event_handlers()`` by test_backend.py (its name is not one autodiscovery imports)."""

from __future__ import annotations

from typing import Any

from django_domain_events.compat.backend import subscribe_to_event

received: list[dict[str, Any]] = []


@subscribe_to_event("unit_backend.legacy_ping")
def on_legacy_ping(payload: dict[str, Any]) -> None:
    received.append(payload)
