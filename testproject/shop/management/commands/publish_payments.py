"""``manage.py publish_payments``: publish ``shop.PaymentSettled`` events, one transaction
each, as a stream of settled payments for the accounting service (``consumerproject/``).

With ``DEMO_BROKER_URL`` set, each commit writes the event's delivery to the broker route, and
the relay (``manage.py relay_events``) sends it; publishing never waits for the broker.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from django_domain_events import publish
from shop.events import PaymentSettled


class Command(BaseCommand):
    help = "Publish PaymentSettled events for orders --first..--first+--count-1, one per commit."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--count", type=int, default=10, help="Events to publish (10).")
        parser.add_argument("--first", type=int, default=1, help="The first order id (1).")
        parser.add_argument(
            "--interval", type=float, default=0.0, help="Seconds between two commits (0)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] < 1:
            raise CommandError(f"--count is {options['count']}; give a number >= 1.")
        first = options["first"]
        for order_id in range(first, first + options["count"]):
            with transaction.atomic():
                publish(
                    PaymentSettled(order_id=order_id, amount=Decimal(order_id) + Decimal("0.5"))
                )
            self.stdout.write(f"Published PaymentSettled for order #{order_id}")
            self.stdout.flush()
            if options["interval"]:
                time.sleep(options["interval"])
        self.stdout.write(f"Published {options['count']} events.")
