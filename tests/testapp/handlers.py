"""Receivers discovered by the app's autodiscovery (this module's name is one it imports)."""

from __future__ import annotations

from django_domain_events import Envelope, receiver

from .events import OrderPlaced
from .models import Effect


@receiver(OrderPlaced)
def record_order_placed(event: OrderPlaced, envelope: Envelope) -> None:
    Effect.objects.create(
        receiver="record_order_placed", event_id=envelope.event_id, attempt=envelope.attempt
    )
