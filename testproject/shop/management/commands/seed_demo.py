"""``manage.py seed_demo``: an admin user and a shop's worth of sample events.

Run it on a migrated database; run it again to add more sample orders (the user is reused and
its password reset).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from argparse import ArgumentParser
from collections import Counter
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db.models import Count, F
from django.utils import timezone

from django_domain_events.delivery.ordering import blocked_lines
from django_domain_events.integration.consuming import Consumed, consume_message
from django_domain_events.integration.messages import Message, to_binary
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.testing import drain
from shop.handlers import DAMAGE_REPORTED, STOCK_RECEIVED
from shop.models import CrmMerge, Order
from shop.services import cancel_order, place_order, record_payment, sign_up_for_newsletter

ADMIN_URL = "http://127.0.0.1:8000/admin/"

# (customer, total, paid?) for the orders placed before the relay last ran ...
EARLIER_ORDERS = [
    ("ada@example.com", Decimal("42.00"), True),
    ("grace@example.com", Decimal("17.50"), True),
    ("alan@example.com", Decimal("129.99"), True),
    ("barbara@example.com", Decimal("8.25"), False),
    ("edsger@example.com", Decimal("64.10"), True),
    ("margaret@example.com", Decimal("250.00"), True),
    ("donald@example.com", Decimal("12.00"), False),
    ("frances@example.com", Decimal("99.95"), False),
]
# ... and the orders placed since.
RECENT_ORDERS = [
    ("ken@example.com", Decimal("35.40"), True),
    ("radia@example.com", Decimal("71.00"), False),
    ("john@example.com", Decimal("5.99"), True),
    ("leslie@example.com", Decimal("310.00"), False),
]
NEWSLETTER_SUBSCRIBERS = ["linus@example.com", "guido@example.com", "yukihiro@example.com"]
# A customer whose CRM contact is being merged: the CRM refuses their order's first status
# change, and the later ones wait behind it in the order's ordering line.
MERGING_CUSTOMER = "sophie@example.com"


def warehouse_message(event_type: str, data: dict[str, Any]) -> Message:
    """A message as the warehouse service sends it."""
    return Message(
        id=str(uuid.uuid4()),
        source="//warehouse.example",
        type=event_type,
        time=timezone.now(),
        data=json.dumps(data).encode(),
    )


class Command(BaseCommand):
    help = (
        "Create (or reset) a superuser and fill the outbox with sample events whose deliveries "
        "end up delivered, failed, dead and waiting behind a dead one."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", default="admin", help="superuser name (default admin)")
        parser.add_argument("--password", default="admin", help="its password (default admin)")

    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        started = timezone.now()
        self.ensure_superuser(username, password)
        self.stdout.write(
            "Seeding the shop. The WARNING and ERROR lines that follow come from receivers that "
            "fail on purpose (a rate-limited CRM, a CRM contact being merged, an unreachable "
            "legacy ERP)."
        )

        self.stdout.write(self.style.MIGRATE_HEADING("\nEarlier today"))
        self.trade(EARLIER_ORDERS, cancel_one=True)
        for email in NEWSLETTER_SUBSCRIBERS:
            sign_up_for_newsletter(email)
        self.stdout.write(f"  {len(NEWSLETTER_SUBSCRIBERS)} newsletter sign-ups")

        # In production the relay (`manage.py relay_events`) runs due retries; here drain() does
        # one catch-up pass, retrying at once: the CRM syncs succeed on their second attempt and
        # the ERP deliveries use up their three attempts and become dead letters.
        self.stdout.write(self.style.MIGRATE_HEADING("\nThe relay catches up"))
        result = drain(max_rounds=10)
        self.stdout.write(
            f"  {result.total} attempts: {result.delivered} delivered, {result.failed} failed "
            f"(retried in the next round), {result.dead} dead"
        )
        spread = self.spread_over_the_day(since=started)
        self.stdout.write(f"  {spread} event chains moved back over the past 20 hours")

        # The relay has not run since, so these orders' failures wait for their retry.
        self.stdout.write(self.style.MIGRATE_HEADING("\nJust now"))
        self.trade(RECENT_ORDERS, cancel_one=False)
        self.block_a_line()

        self.stdout.write(self.style.MIGRATE_HEADING("\nMessages from the warehouse service"))
        self.consume_warehouse_messages()

        self.summary()
        self.credentials(username, password)

    def spread_over_the_day(self, *, since: dt.datetime) -> int:
        """Move the events published since ``since``, with their deliveries, back in time: each
        correlation (an order's events and those they caused) by a whole number of hours, up to
        20, so that the admin dashboard's hourly charts show a day rather than one bar.

        Only a demo rewrites outbox times; it keeps each chain's order and spacing.
        """
        correlations = list(
            OutboxEvent.objects.filter(occurred_at__gte=since)
            .order_by("correlation_id")
            .values_list("correlation_id", flat=True)
            .distinct()
        )
        for index, correlation_id in enumerate(correlations):
            shift = dt.timedelta(hours=20 - index % 20, minutes=(index * 17) % 60)
            events = OutboxEvent.objects.filter(correlation_id=correlation_id)
            Delivery.objects.filter(event__in=events).update(
                created_at=F("created_at") - shift,
                dispatched_at=F("dispatched_at") - shift,
                last_attempt_at=F("last_attempt_at") - shift,
                delivered_at=F("delivered_at") - shift,
                next_attempt_at=F("next_attempt_at") - shift,
            )
            events.update(occurred_at=F("occurred_at") - shift)
        return len(correlations)

    def ensure_superuser(self, username: str, password: str) -> None:
        """Create the superuser, or make the existing user one with this password."""
        user_model = get_user_model()
        user = user_model._default_manager.filter(username=username).first()
        if user is None:
            user_model._default_manager.db_manager().create_superuser(
                username=username, email=f"{username}@shop.example", password=password
            )
            return
        user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        user.save()

    def trade(self, orders: list[tuple[str, Decimal, bool]], *, cancel_one: bool) -> None:
        """Place ``orders``, pay those marked paid, and cancel the first unpaid one if asked."""
        placed = paid = cancelled = 0
        for customer, total, is_paid in orders:
            order = place_order(customer, total)
            placed += 1
            if is_paid:
                record_payment(order, total, provider_reference=f"ch_demo_{order.pk:05d}")
                paid += 1
            elif cancel_one and not cancelled:
                cancel_order(order, reason="the customer changed their mind")
                cancelled += 1
        self.stdout.write(f"  {placed} orders placed, {paid} paid, {cancelled} cancelled")

    def block_a_line(self) -> None:
        """Place, pay and cancel an order of a customer the CRM is merging: the order's first
        status change to the ordered CRM receiver goes dead, and the two after it wait."""
        CrmMerge.objects.update_or_create(contact=MERGING_CUSTOMER, defaults={"finished": False})
        order = place_order(MERGING_CUSTOMER, Decimal("54.00"))
        record_payment(order, order.total, provider_reference=f"ch_demo_{order.pk:05d}")
        cancel_order(order, reason="the customer ordered twice by mistake")
        self.stdout.write(
            f"  order #{order.pk} of {MERGING_CUSTOMER}, whose CRM contact is being merged: "
            f"placed, paid and cancelled; its CRM status sync is blocked"
        )

    def consume_warehouse_messages(self) -> None:
        """Hand the consumer what the warehouse service would send through the broker: stock
        arrivals (one of them twice, as a broker redelivers), a damage report whose consumer
        always fails, and a type nothing here consumes."""
        sent = [
            warehouse_message(STOCK_RECEIVED, {"sku": "MUG-01", "quantity": 40}),
            warehouse_message(STOCK_RECEIVED, {"sku": "TEE-XL", "quantity": 12}),
            warehouse_message(DAMAGE_REPORTED, {"sku": "MUG-01", "broken": 3}),
            warehouse_message("warehouse.InventoryCounted", {"skus": 214}),
        ]
        outcomes: Counter[str] = Counter()
        for message in [*sent, sent[0]]:
            # A message the broker gives again until its consumer's attempts are used up.
            for _attempt in range(3):
                headers, body = to_binary(message)
                found = consume_message(message, headers, body, broker=True)
                if Consumed.FAILED not in found:
                    break
            outcomes.update(outcome.value for outcome in found)
        shown = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
        self.stdout.write(f"  {len(sent) + 1} messages consumed: {shown}")

    def summary(self) -> None:
        """Counts of the outbox's deliveries by state, overall and per receiver."""
        states = [state.value for state in DeliveryState]
        by_receiver: dict[str, Counter[str]] = {}
        rows = Delivery.objects.values_list("receiver", "state").annotate(n=Count("id"))
        for receiver_name, state, n in rows:
            by_receiver.setdefault(receiver_name, Counter())[state] += n
        totals: Counter[str] = sum(by_receiver.values(), Counter())

        self.stdout.write(self.style.MIGRATE_HEADING("\nOutbox"))
        self.stdout.write(
            f"  {OutboxEvent.objects.count()} events, {sum(totals.values())} deliveries, "
            f"{Order.objects.count()} orders"
        )
        width = max((len(name) for name in by_receiver), default=8)
        self.stdout.write("  " + "receiver".ljust(width) + "".join(f"{s:>11}" for s in states))
        for name in sorted(by_receiver):
            counts = by_receiver[name]
            self.stdout.write(
                "  " + name.ljust(width) + "".join(f"{counts[s]:>11}" for s in states)
            )
        self.stdout.write("  " + "total".ljust(width) + "".join(f"{totals[s]:>11}" for s in states))
        lines = list(blocked_lines("default"))
        self.stdout.write(f"\n  Ordering keys blocked by a dead delivery: {len(lines)}")
        for line in lines:
            waiting = Delivery.objects.filter(
                receiver=line["receiver"],
                ordering_key=line["ordering_key"],
                state=DeliveryState.WAITING,
            ).count()
            self.stdout.write(f"    {line['receiver']} / {line['ordering_key']}: {waiting} waiting")

    def credentials(self, username: str, password: str) -> None:
        """Where to look, and how to sign in."""
        rule = "=" * 60
        self.stdout.write(
            self.style.SUCCESS(
                f"\n{rule}\n"
                f"  The demo shop is ready. Start the server and sign in:\n"
                f"    Admin:    {ADMIN_URL}\n"
                f"    Username: {username}\n"
                f"    Password: {password}\n"
                f"  Outbox:     {ADMIN_URL}django_domain_events/\n"
                f"{rule}"
            )
        )
