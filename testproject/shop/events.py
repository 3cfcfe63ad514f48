"""What happens in the shop, as domain events.

Typed events are frozen dataclasses; their ``event_type`` is ``"shop.<ClassName>"``. The two
named events below carry plain JSON payloads and need no class. ``publishers`` says where each
is published from, for ``manage.py events_catalogue`` to show. Customers' email addresses
are sensitive: the admin shows them as ``[redacted]``, and ``manage.py erase_sensitive --subject
EMAIL`` erases them from the stored events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from django_domain_events import (
    DomainEvent,
    IntegrationEvent,
    Sensitive,
    declare_sensitive,
)


@dataclass(frozen=True)
class OrderPlaced(DomainEvent):
    """A customer placed an order. The customer is their email address: sensitive, and the
    data subject that ``erase_sensitive`` finds."""

    data_subject = "customer"

    publishers = ("shop.services",)

    order_id: int
    total: Decimal
    customer: Annotated[str, Sensitive]


@dataclass(frozen=True)
class PaymentReceived(DomainEvent):
    """A payment for an order came in."""

    publishers = ("shop.services",)

    order_id: int
    payment_id: int
    amount: Decimal


@dataclass(frozen=True)
class OrderCancelled(DomainEvent):
    """An order was cancelled before it shipped."""

    publishers = ("shop.services",)

    order_id: int
    reason: str


@dataclass(frozen=True)
class OrderStatusChanged(DomainEvent):
    """An order's status changed (placed, paid, cancelled). Its ordering key is the order: an
    ordered receiver gets one order's changes one at a time, in the order they happened."""

    publishers = ("shop.services",)

    order_id: int
    status: str

    def ordering_key(self) -> str:
        """``order:<id>``, the line this event joins for ordered receivers."""
        return f"order:{self.order_id}"


@dataclass(frozen=True)
class PaymentSettled(IntegrationEvent):
    """An order was paid in full, told to the accounting service.

    An integration event: a contract with another service, which ``events_catalogue --format
    asyncapi`` describes."""

    publishers = ("shop.services",)

    order_id: int
    amount: Decimal
    currency: str = "EUR"


NEWSLETTER_SIGNUP = "shop.newsletter_signup"
"""Named event: ``{"email": str}``, the email sensitive and its own data subject."""

declare_sensitive(NEWSLETTER_SIGNUP, fields=("email",), data_subject="email")

RECEIPT_REQUESTED = "shop.receipt_requested"
"""Named event: ``{"order_id": int, "payment_id": int, "amount": str}``, published by a receiver
of ``PaymentReceived`` (so it carries that event as its cause)."""
