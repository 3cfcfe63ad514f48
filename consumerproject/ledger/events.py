"""The events the accounting service consumes, declared in its own terms.

The shop sends ``shop.PaymentSettled`` at version 1: the amount as a decimal number of whole
units. The ledger keeps cents, so its class is version 2 and upgrades what arrives at version 1
with ``upcast()``: messages are decoded by their type and version, never by the producer's
class.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django_domain_events import IntegrationEvent


@dataclass(frozen=True)
class PaymentSettled(IntegrationEvent):
    """An order of the shop was paid in full."""

    event_type = "shop.PaymentSettled"
    version = 2

    order_id: int
    amount_cents: int
    currency: str

    @classmethod
    def upcast(cls, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Version 1 (the shop's) sends ``amount`` in whole units, as a decimal string."""
        return {
            "order_id": payload["order_id"],
            "amount_cents": int(Decimal(str(payload["amount"])) * 100),
            "currency": payload.get("currency", "EUR"),
        }
