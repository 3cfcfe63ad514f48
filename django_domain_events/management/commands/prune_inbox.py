"""``manage.py prune_inbox``: delete inbox rows past ``DOMAIN_EVENTS["INBOX_RETENTION"]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.integration.pruning import BATCH_SIZE, inbox_retention, prune_inbox
from django_domain_events.management.options import (
    add_database_argument,
    check_batch_size,
    database_alias,
)


class Command(BaseCommand):
    help = (
        "Delete consumed messages kept past their outcome's retention "
        "(DOMAIN_EVENTS['INBOX_RETENTION']; processed ones after 30 days by default), in "
        "small batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Rows deleted per transaction (default: {BATCH_SIZE}).",
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        check_batch_size(options["batch_size"])
        kept = inbox_retention()
        if not kept:
            self.stdout.write("INBOX_RETENTION keeps every outcome for ever: nothing to prune.")
            return
        deleted = prune_inbox(
            using=database_alias(options["database"]) or "default",
            batch_size=options["batch_size"] or BATCH_SIZE,
        )
        shown = ", ".join(f"{outcome} {count}" for outcome, count in sorted(deleted.items()))
        self.stdout.write(f"Pruned inbox rows: {shown}.")
