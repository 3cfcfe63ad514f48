"""``manage.py cancel_deliveries``: cancel chosen owed deliveries, keeping them as cancelled."""

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
from django_domain_events.models import CANCELLABLE_STATES
from django_domain_events.operations.cancelling import CancelResult, cancel_selected


class Command(BaseCommand):
    help = (
        "Cancel deliveries: the selected owed deliveries (pending, dispatched, failed, waiting "
        "or scheduled; narrow with --state) never run, and stay in the outbox as cancelled. "
        "Select them with --id, --event, --type, --receiver, --since and --until, or --all; "
        "--dry-run counts them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_delivery_selection_arguments(
            parser,
            states=CANCELLABLE_STATES,
            state_help="Only deliveries in this state (repeatable; default: every owed state).",
            all_help="Every owed (or --state) delivery.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be cancelled; change nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        with selection_errors():
            selection = delivery_selection(
                options, default_states=CANCELLABLE_STATES, verb="cancel", every="every owed one"
            )
            dry_run: bool = options["dry_run"]
            result = cancel_selected(
                selection,
                using=database_alias(options["database"]),
                dry_run=dry_run,
                on_batch=self._progress if not dry_run else None,
            )
        if dry_run:
            self.stdout.write(f"Dry run: {len(result.cancelled)} deliveries would be cancelled.")
            return
        self.stdout.write(
            f"Cancelled {len(result.cancelled)} deliveries; {result.skipped} left alone (settled "
            f"or running meanwhile); {result.released} ordering lines released."
        )

    def _progress(self, batch: CancelResult) -> None:
        self.stdout.write(f"{len(batch.cancelled)} deliveries cancelled.")
