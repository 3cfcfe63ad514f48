"""``manage.py consume_events``: consume messages from the broker into this project's
``@consumer`` receivers, through the inbox."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_domain_events.integration.consuming import Consumer, ConsumerStopped
from django_domain_events.integration.subscriptions import configured_subscription
from django_domain_events.management.options import add_database_argument, database_alias
from django_domain_events.management.stopping import stop_on_signals
from django_domain_events.transports import transport_for


class Command(BaseCommand):
    help = (
        "Consume messages from the queue of DOMAIN_EVENTS['CONSUME'] into the @consumer "
        "receivers, each receiver's effects committed with its inbox row before the message "
        "is acknowledged. Runs until SIGTERM or SIGINT (the first lets the current message "
        "finish, a second stops at once), or --max-messages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", default=None, help="Queue to read (default: CONSUME's).")
        parser.add_argument(
            "--transport",
            default=None,
            help="Alias in DOMAIN_EVENTS['TRANSPORTS'] (default: CONSUME's, else 'default').",
        )
        parser.add_argument(
            "--max-messages",
            type=int,
            default=None,
            help="Stop after this many messages (default: run until stopped).",
        )
        parser.add_argument("--once", action="store_true", help="Consume one message, then exit.")
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        max_messages: int | None = 1 if options["once"] else options["max_messages"]
        if max_messages is not None and max_messages < 1:
            raise CommandError(f"--max-messages is {max_messages}; give a number >= 1.")
        try:
            subscription = configured_subscription(
                transport=options["transport"], queue=options["queue"]
            )
            transport = transport_for(subscription.transport)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        consumer = Consumer(
            transport,
            queue=subscription.queue,
            destinations=subscription.destinations,
            using=database_alias(options["database"]) or "default",
            max_messages=max_messages,
        )
        bound = ", ".join(f"{d.name} ({d.routing_key})" for d in subscription.destinations)
        self.stdout.write(
            f"Consuming queue {subscription.queue!r} on transport {subscription.transport!r}, "
            f"bound to {bound}."
        )
        try:
            with stop_on_signals(consumer.stop, on_first=self._stopping):
                totals = consumer.run()
        except ConsumerStopped as exc:
            raise CommandError(str(exc)) from exc
        finally:
            transport.close()
        self.stdout.write(f"Consumer done: {totals}.")

    def _stopping(self) -> None:
        self.stdout.write("Stopping after the current message; a second signal stops at once.")
        self.stdout.flush()
