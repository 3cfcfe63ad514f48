"""The shop's receivers. django_domain_events imports this module at start-up (every installed
app's ``handlers`` module), which registers them.

Each receiver runs in its own transaction together with its delivery's "delivered" mark: the
rows it writes here commit if and only if it succeeds. The failures are on purpose, so that the
admin has failed and dead deliveries to show.
"""

from __future__ import annotations

import datetime as dt
import logging

from django_domain_events import (
    Envelope,
    GiveUp,
    NamedEvent,
    NotYet,
    RetryAfter,
    consumer,
    handles,
    publish,
    receiver,
    receiver_class,
)

from .events import (
    NEWSLETTER_SIGNUP,
    RECEIPT_REQUESTED,
    OrderCancelled,
    OrderPlaced,
    OrderStatusChanged,
    PaymentReceived,
)
from .models import CrmMerge, CrmOrderStatus, CrmSync, EmailLog, Order

logger = logging.getLogger(__name__)

WAREHOUSE = "warehouse@shop.example"


@receiver_class
class CustomerEmails:
    """The emails a customer gets, one method per event. A class-based receiver: each method
    is a receiver of its own (named ``shop.handlers.CustomerEmails.<method>``), run on a fresh
    instance for every delivery."""

    def send(self, to: str, subject: str) -> None:
        """Not a receiver (no ``@handles``): a helper the receiving methods share."""
        EmailLog.objects.create(to=to, subject=subject)

    @handles(OrderPlaced)
    def send_order_confirmation(self, event: OrderPlaced) -> None:
        """Email the customer that their order arrived."""
        self.send(event.customer, f"We received your order #{event.order_id} ({event.total} €)")

    @handles(OrderCancelled)
    def send_cancellation_notice(self, event: OrderCancelled) -> None:
        """Tell the customer their order is cancelled, and why."""
        order = Order.objects.get(pk=event.order_id)
        self.send(order.customer, f"Your order #{order.pk} was cancelled: {event.reason}")

    @handles(RECEIPT_REQUESTED)
    def send_receipt(self, event: NamedEvent) -> None:
        """Email the receipt. Named events arrive as ``NamedEvent`` with a plain JSON payload."""
        order = Order.objects.get(pk=event.payload["order_id"])
        self.send(
            order.customer,
            f"Receipt for order #{order.pk}: {event.payload['amount']} € received",
        )


@receiver(OrderPlaced)
def sync_order_to_crm(event: OrderPlaced, envelope: Envelope) -> None:
    """Push the order to the CRM, recording which event and attempt did it.

    The CRM rate-limits: the first attempt for every third order is refused, and the delivery
    asks to be retried in a minute. The retry (run by the relay) succeeds.
    """
    if event.order_id % 3 == 0 and envelope.attempt == 1:
        raise RetryAfter(60, reason=f"CRM answered 429 Too Many Requests for #{event.order_id}")
    CrmSync.objects.create(
        order_id=event.order_id,
        event_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        attempt=envelope.attempt,
    )


@receiver(OrderStatusChanged, ordered=True)
def sync_order_status_to_crm(event: OrderStatusChanged, envelope: Envelope) -> None:
    """Mirror the order's status in the CRM. An ordered receiver: one order's status changes
    (ordering key ``order:<id>``) reach it one at a time, in the order they happened, so a late
    "paid" never overwrites "cancelled"; other orders never wait for it.

    The CRM rate-limits the first attempt for every third order, as for ``sync_order_to_crm``:
    the order's later changes wait until the retry succeeds. It refuses for good to create an
    order for a contact it is merging (a ``CrmMerge`` not finished): that delivery is dead at
    once, and the order's later changes wait behind it until a person retries it (after
    finishing the merge) or skips it, in the admin.
    """
    order = Order.objects.get(pk=event.order_id)
    placed = event.status == Order.Status.PLACED
    if placed and CrmMerge.objects.filter(contact=order.customer, finished=False).exists():
        raise GiveUp(
            f"CRM contact {order.customer} is being merged; cannot create order #{order.pk}"
        )
    if placed and event.order_id % 3 == 0 and envelope.attempt == 1:
        raise RetryAfter(60, reason=f"CRM answered 429 Too Many Requests for #{event.order_id}")
    CrmOrderStatus.objects.update_or_create(
        order=order, defaults={"status": event.status, "event_id": envelope.event_id}
    )


@receiver(OrderPlaced, dispatcher="deferred")
async def notify_warehouse(event: OrderPlaced) -> None:
    """Ask the warehouse to pick the order. An ``async def`` receiver: the outbox runs it to
    completion, and Django's async ORM calls run in the delivery's own transaction.

    On the ``deferred`` dispatcher: nothing runs it at commit; its deliveries stay pending
    until the relay (``manage.py relay_events``) runs them, as the demo's does."""
    order = await Order.objects.aget(pk=event.order_id)
    await EmailLog.objects.acreate(to=WAREHOUSE, subject=f"Pick and pack {order}")


@receiver(OrderPlaced, delay=dt.timedelta(days=3))
def ask_for_review(event: OrderPlaced) -> None:
    """Ask the customer for a review three days after the order. A delayed receiver: its
    deliveries are ``scheduled`` (the admin shows when each is due) and the relay runs them
    once due; an order not paid by then is looked at again a day later (``NotYet``, which
    spends no attempt). Cancel one in the admin to never send it."""
    order = Order.objects.get(pk=event.order_id)
    if order.status == Order.Status.CANCELLED:
        return
    if order.status != Order.Status.PAID:
        raise NotYet(delay=dt.timedelta(days=1), reason=f"order #{order.pk} is not paid yet")
    EmailLog.objects.create(to=order.customer, subject=f"How was your order #{order.pk}?")


@receiver(PaymentReceived, max_attempts=3)
def push_payment_to_legacy_erp(event: PaymentReceived) -> None:
    """Book the payment in the old ERP, which is never reachable: each delivery fails, is
    retried, and after its third attempt becomes a dead letter waiting for a person."""
    raise ConnectionError(
        f"legacy ERP at erp.internal:8443 refused the connection (payment {event.payment_id})"
    )


@receiver(PaymentReceived)
def request_receipt(event: PaymentReceived) -> None:
    """Publish a follow-up event. Published while handling ``PaymentReceived``, it carries that
    event's id as its causation id and shares its correlation id."""
    publish(
        RECEIPT_REQUESTED,
        {"order_id": event.order_id, "payment_id": event.payment_id, "amount": str(event.amount)},
    )


@receiver(NEWSLETTER_SIGNUP)
def welcome_subscriber(event: NamedEvent) -> None:
    """Send the newsletter's welcome email."""
    EmailLog.objects.create(to=event.payload["email"], subject="Welcome to the shop newsletter")
    logger.info("Welcomed newsletter subscriber %s", event.payload["email"])


# Messages consumed from other services (``manage.py consume_events``; ``seed_demo`` hands a few
# to the consumer directly). Each runs in one transaction with its inbox row, so a redelivered
# copy sends no second email.

STOCK_RECEIVED = "warehouse.StockReceived"
DAMAGE_REPORTED = "warehouse.DamageReported"


@consumer(STOCK_RECEIVED)
def tell_the_shop_about_stock(event: NamedEvent) -> None:
    """Email the shop when the warehouse books a delivery of stock."""
    EmailLog.objects.create(to=WAREHOUSE, subject=f"Stock received: {event.payload['sku']}")


@consumer(DAMAGE_REPORTED, max_attempts=3)
def claim_damage_from_the_carrier(event: NamedEvent) -> None:
    """File a claim with the carrier, whose claims API is never reachable: the message ends
    dead in the inbox, kept for a person to retry."""
    raise ConnectionError("carrier claims API at claims.carrier.example refused the connection")
