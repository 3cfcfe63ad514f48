"""The integration event the broker cases send through RabbitMQ, and the consumer that takes
it: both processes of a case import this module, as a producer and a consumer service would
share the event's contract."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from django_domain_events import Envelope, IntegrationEvent, consumer

from .events import TOTAL_TEXT
from .models import RawEvent

SUBMITTED_TYPE = "benchapp.OrderSubmitted"


@dataclass(frozen=True)
class OrderSubmitted(IntegrationEvent):
    """``OrderPlaced``'s shape as an integration event; routed by the cases' ``ROUTES``."""

    event_type = SUBMITTED_TYPE

    order_id: int
    total: Decimal


EFFECT_CONSUMER = "benchapp.record_submitted"
"""The name of the consumer's receiver: the key of its inbox rows."""


def register_effect_consumer(alias: str) -> None:
    """Register the ``@consumer`` receiver whose effect the cases wait for: a ``RawEvent`` row
    with the event's id, written on ``alias`` in the transaction of its inbox row, its
    ``occurred_at`` the moment the receiver ran."""

    @consumer(OrderSubmitted, name=EFFECT_CONSUMER)
    def record_submitted(event: OrderSubmitted, envelope: Envelope) -> None:
        RawEvent.objects.using(alias).create(
            id=envelope.event_id,
            event_type=SUBMITTED_TYPE,
            payload={"order_id": event.order_id, "total": TOTAL_TEXT},
            occurred_at=timezone.now(),
        )
