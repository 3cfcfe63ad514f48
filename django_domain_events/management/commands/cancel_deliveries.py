"""``manage.py cancel_deliveries``: cancel chosen owed deliveries, keeping them as cancelled."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.management.options import (
    add_database_argument,
    database_alias,
    selection_errors,
)
from django_domain_events.models import CANCELLABLE_STATES
from django_domain_events.operations.cancelling import CancelResult, cancel_selected
from django_domain_events.operations.selection import (
    DeliverySelection,
    SelectionError,
    parse_ids,
    parse_optional_moment,
)


class Command(BaseCommand):
    help = (
        "Cancel deliveries: the selected owed deliveries (pending, dispatched, failed, waiting "
        "or scheduled; narrow with --state) never run, and stay in the outbox as cancelled. "
        "Select them with --id, --event, --type, --receiver, --since and --until, or --all; "
        "--dry-run counts them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", action="append", default=[], help="A delivery id.")
        parser.add_argument("--event", action="append", default=[], help="An event id.")
        parser.add_argument("--type", action="append", default=[], help="An event type.")
        parser.add_argument("--receiver", action="append", default=[], help="A receiver name.")
        parser.add_argument(
            "--since", help="Deliveries written at or after: 2026-05-01T12:00Z, or 2h ago."
        )
        parser.add_argument("--until", help="Deliveries written before; same forms.")
        parser.add_argument(
            "--state",
            action="append",
            choices=[str(state) for state in CANCELLABLE_STATES],
            default=None,
            help="Only deliveries in this state (repeatable; default: every owed state).",
        )
        parser.add_argument("--all", action="store_true", help="Every owed (or --state) delivery.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be cancelled; change nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        with selection_errors():
            selection = DeliverySelection(
                states=tuple(options["state"] or CANCELLABLE_STATES),
                ids=tuple(parse_ids(options["id"], option="--id")),
                event_ids=tuple(parse_ids(options["event"], option="--event")),
                event_types=tuple(options["type"]),
                receivers=tuple(options["receiver"]),
                since=parse_optional_moment(options["since"], option="--since"),
                until=parse_optional_moment(options["until"], option="--until"),
            )
            if selection.is_empty and not options["all"]:
                raise SelectionError(
                    "Select the deliveries to cancel with --id, --event, --type, --receiver, "
                    "--since or --until, or give --all to cancel every owed one."
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
