"""``manage.py replay_events``: new deliveries of chosen events, to all or named receivers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.management.options import (
    add_database_argument,
    database_alias,
    selection_errors,
)
from django_domain_events.operations.redelivery import RedeliveryResult, replay_selected
from django_domain_events.operations.selection import (
    EventSelection,
    SelectionError,
    parse_ids,
    parse_optional_moment,
)


class Command(BaseCommand):
    help = (
        "Replay events: give each selected event a new delivery for each of its registered "
        "receivers (or those named with --receiver) and dispatch them. Earlier deliveries are "
        "kept. Select events with --id, --type, --since and --until; --dry-run lists them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", action="append", default=[], help="An event id (repeatable).")
        parser.add_argument(
            "--type", action="append", default=[], help="An event type (repeatable)."
        )
        parser.add_argument(
            "--since", help="Events that occurred at or after: 2026-05-01T12:00Z, or 2h ago."
        )
        parser.add_argument("--until", help="Events that occurred before; same forms.")
        parser.add_argument(
            "--receiver",
            action="append",
            default=None,
            help="Replay only to this receiver (repeatable; default: all of each event's).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be replayed; write nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        with selection_errors():
            selection = EventSelection(
                ids=tuple(parse_ids(options["id"], option="--id")),
                event_types=tuple(options["type"]),
                since=parse_optional_moment(options["since"], option="--since"),
                until=parse_optional_moment(options["until"], option="--until"),
            )
            if selection.is_empty:
                raise SelectionError(
                    "Select the events to replay with --id, --type, --since or --until."
                )
            dry_run: bool = options["dry_run"]
            result = replay_selected(
                selection,
                using=database_alias(options["database"]),
                receivers=options["receiver"],
                dry_run=dry_run,
                on_batch=self._progress if not dry_run else None,
            )
        if dry_run:
            for event in result.events:
                receivers = ", ".join(event.receivers) or "no receiver"
                self.stdout.write(f"{event.event_id} {event.event_type} -> {receivers}")
            self.stdout.write(
                f"Dry run: {len(result.events)} events would be replayed as "
                f"{result.deliveries} new deliveries."
            )
            return
        self.stdout.write(
            f"Replayed {len(result.events)} events as {result.deliveries} new deliveries: "
            f"{result.totals}."
        )

    def _progress(self, batch: RedeliveryResult) -> None:
        self.stdout.write(f"{len(batch.events)} events, {batch.deliveries} new deliveries.")
