"""The handler module of the migration guide's "before" example, under the seed's name."""

from __future__ import annotations

from typing import Any

from django_domain_events.backend import subscribe_to_event

receipts: list[Any] = []


@subscribe_to_event("billing.invoice_paid")
def send_receipt(payload: dict[str, Any]) -> None:
    receipts.append(payload["invoice_id"])
