"""The shop's use cases: each changes the models and publishes what happened, in one transaction.

If the transaction rolls back, the events were never published; once it commits, their
receivers run (with the ``sync`` dispatcher, right after the commit in this process).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from django_domain_events import publish

from .events import NEWSLETTER_SIGNUP, OrderCancelled, OrderPlaced, PaymentReceived
from .models import Order, Payment


def place_order(customer: str, total: Decimal) -> Order:
    """Create an order for ``customer`` and publish ``OrderPlaced``."""
    with transaction.atomic():
        order = Order.objects.create(customer=customer, total=total)
        publish(OrderPlaced(order_id=order.pk, total=total, customer=customer))
    return order


def record_payment(order: Order, amount: Decimal, provider_reference: str) -> Payment:
    """Record a payment for ``order``, mark it paid, and publish ``PaymentReceived``."""
    with transaction.atomic():
        payment = Payment.objects.create(
            order=order, amount=amount, provider_reference=provider_reference
        )
        order.status = Order.Status.PAID
        order.save(update_fields=["status"])
        publish(PaymentReceived(order_id=order.pk, payment_id=payment.pk, amount=amount))
    return payment


def cancel_order(order: Order, reason: str) -> None:
    """Cancel ``order`` and publish ``OrderCancelled``."""
    with transaction.atomic():
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status"])
        publish(OrderCancelled(order_id=order.pk, reason=reason))


def sign_up_for_newsletter(email: str) -> None:
    """Publish the named event ``shop.newsletter_signup`` (the shop keeps no table for it)."""
    publish(NEWSLETTER_SIGNUP, {"email": email})
