"""The shop's use cases: each changes the models and publishes what happened, in one transaction.

``Order`` is an aggregate (``EventRecordingMixin``): a use case records the order's events on it
and ``order.save()`` publishes them in the save's transaction. If the transaction rolls back,
the events were never published; once it commits, their receivers run (with the ``sync``
dispatcher, right after the commit in this process).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from django_domain_events import publish

from .events import (
    NEWSLETTER_SIGNUP,
    OrderCancelled,
    OrderPlaced,
    OrderStatusChanged,
    PaymentReceived,
    PaymentSettled,
)
from .models import Order, Payment


def place_order(customer: str, total: Decimal) -> Order:
    """Create an order for ``customer``; saving it publishes ``OrderPlaced`` and
    ``OrderStatusChanged``."""
    order = Order(customer=customer, total=total)
    # The order id comes from the INSERT, so the event is built by a function of the saved
    # order. save() writes the row and the event in one transaction of its own.
    order.record_event(
        lambda placed: OrderPlaced(order_id=placed.pk, total=placed.total, customer=customer)
    )
    order.record_event(
        lambda placed: OrderStatusChanged(order_id=placed.pk, status=str(placed.status))
    )
    order.save()
    return order


def record_payment(order: Order, amount: Decimal, provider_reference: str) -> Payment:
    """Record a payment for ``order`` and mark it paid; the order publishes
    ``PaymentReceived``, ``OrderStatusChanged`` and the integration event ``PaymentSettled``."""
    with transaction.atomic():
        payment = Payment.objects.create(
            order=order, amount=amount, provider_reference=provider_reference
        )
        order.status = Order.Status.PAID
        order.record_event(PaymentReceived(order_id=order.pk, payment_id=payment.pk, amount=amount))
        order.record_event(OrderStatusChanged(order_id=order.pk, status=str(order.status)))
        order.record_event(PaymentSettled(order_id=order.pk, amount=amount))
        order.save(update_fields=["status"])
    return payment


def cancel_order(order: Order, reason: str) -> None:
    """Cancel ``order``; the order publishes ``OrderCancelled`` and ``OrderStatusChanged``."""
    order.status = Order.Status.CANCELLED
    order.record_event(OrderCancelled(order_id=order.pk, reason=reason))
    order.record_event(OrderStatusChanged(order_id=order.pk, status=str(order.status)))
    order.save(update_fields=["status"])


def sign_up_for_newsletter(email: str) -> None:
    """Publish the named event ``shop.newsletter_signup`` (the shop keeps no table for it)."""
    publish(NEWSLETTER_SIGNUP, {"email": email})
