"""``manage.py retry_deliveries``: run chosen dead or failed deliveries again, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.management.options import (
    add_database_argument,
    add_delivery_selection_arguments,
    database_alias,
    delivery_selection,
    selection_errors,
)
from django_domain_events.models import DeliveryState
from django_domain_events.operations.redelivery import RedeliveryResult, retry_selected


class Command(BaseCommand):
    help = (
        "Retry deliveries: run the selected dead deliveries (or failed ones, with --state "
        "failed) again now, each with a fresh set of attempts. Select them with --id, --event, "
        "--type, --receiver, --since and --until, or --all; --dry-run counts them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_delivery_selection_arguments(
            parser,
            states=[DeliveryState.DEAD, DeliveryState.FAILED],
            state_help="dead (the default) or failed; give both to retry both.",
            all_help="Every dead (or --state) delivery.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be retried; change nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        with selection_errors():
            selection = delivery_selection(
                options, default_states=[DeliveryState.DEAD], verb="retry", every="every one"
            )
            dry_run: bool = options["dry_run"]
            result = retry_selected(
                selection,
                using=database_alias(options["database"]),
                dry_run=dry_run,
                on_batch=self._progress if not dry_run else None,
            )
        states = " or ".join(selection.states)
        if dry_run:
            self.stdout.write(f"Dry run: {result.deliveries} {states} deliveries would be retried.")
            return
        self.stdout.write(f"Retried {result.deliveries} {states} deliveries: {result.totals}.")

    def _progress(self, batch: RedeliveryResult) -> None:
        self.stdout.write(f"{batch.deliveries} deliveries retried: {batch.totals}.")
