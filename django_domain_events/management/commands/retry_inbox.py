"""``manage.py retry_inbox``: consume failed, dead, unknown-type or malformed messages again
from what the inbox kept of them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_domain_events.integration.inbox import RETRYABLE_OUTCOMES, InboxMessage
from django_domain_events.integration.retrying import retry_inbox_messages
from django_domain_events.management.options import add_database_argument, database_alias


class Command(BaseCommand):
    help = (
        "Consume inbox messages again from their kept copy: dead ones (the default), or those "
        "of --outcome (failed, dead, unknown_type, malformed), narrowed by --type, --receiver "
        "or --message; --dry-run counts them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--outcome",
            action="append",
            choices=[str(outcome) for outcome in RETRYABLE_OUTCOMES],
            default=None,
            help="Outcome of the rows to retry (default: dead); give it again for more.",
        )
        parser.add_argument("--type", action="append", default=[], help="A message type.")
        parser.add_argument("--receiver", action="append", default=[], help="A receiver name.")
        parser.add_argument("--message", action="append", default=[], help="A message id.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be retried; change nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        using = database_alias(options["database"]) or "default"
        outcomes = options["outcome"] or ["dead"]
        rows = InboxMessage.objects.using(using).filter(outcome__in=outcomes)
        if options["type"]:
            rows = rows.filter(event_type__in=options["type"])
        if options["receiver"]:
            rows = rows.filter(receiver__in=options["receiver"])
        if options["message"]:
            rows = rows.filter(message_id__in=options["message"])
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {rows.count()} inbox messages would be retried.")
            return
        totals = retry_inbox_messages(rows.order_by("received_at").iterator(), using=using)
        self.stdout.write(f"Retried inbox messages: {totals}.")
        if totals.still_failing:
            raise CommandError(f"{totals.still_failing} still failing; see their last error.")
