"""Events of the test app."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django_domain_events import DomainEvent


@dataclass(frozen=True)
class OrderPlaced(DomainEvent):
    order_id: int
    total: Decimal


@dataclass(frozen=True)
class OrderShipped(DomainEvent):
    """Version 2 added ``carrier``; rows written at version 1 are upcast."""

    version = 2

    order_id: int
    carrier: str

    @classmethod
    def upcast(cls, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
        if from_version == 1:
            return {**payload, "carrier": "unknown"}
        return super().upcast(payload, from_version)


@dataclass(frozen=True)
class Pinged(DomainEvent):
    """A small event for tests that declare their own receivers of it (in the plugin's
    ``receiver_registry``); its event type is ``testapp.Pinged``."""

    n: int


@dataclass(frozen=True)
class Ponged(DomainEvent):
    """A second small event, for tests that need two types, or a receiver that publishes one;
    its event type is ``testapp.Ponged``."""

    n: int
