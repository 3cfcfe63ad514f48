"""``manage.py retry_deliveries``: run chosen dead or failed deliveries again, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.management.options import (
    add_database_argument,
    database_alias,
    selection_errors,
)
from django_domain_events.models import DeliveryState
from django_domain_events.operations.redelivery import RedeliveryResult, retry_selected
from django_domain_events.operations.selection import (
    DeliverySelection,
    SelectionError,
    parse_ids,
    parse_optional_moment,
)


class Command(BaseCommand):
    help = (
        "Retry deliveries: run the selected dead deliveries (or failed ones, with --state "
        "failed) again now, each with a fresh set of attempts. Select them with --id, --event, "
        "--type, --receiver, --since and --until, or --all; --dry-run counts them."
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
            choices=[DeliveryState.DEAD, DeliveryState.FAILED],
            default=None,
            help="dead (the default) or failed; give both to retry both.",
        )
        parser.add_argument("--all", action="store_true", help="Every dead (or --state) delivery.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be retried; change nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        with selection_errors():
            selection = DeliverySelection(
                states=tuple(options["state"] or [DeliveryState.DEAD]),
                ids=tuple(parse_ids(options["id"], option="--id")),
                event_ids=tuple(parse_ids(options["event"], option="--event")),
                event_types=tuple(options["type"]),
                receivers=tuple(options["receiver"]),
                since=parse_optional_moment(options["since"], option="--since"),
                until=parse_optional_moment(options["until"], option="--until"),
            )
            if selection.is_empty and not options["all"]:
                raise SelectionError(
                    "Select the deliveries to retry with --id, --event, --type, --receiver, "
                    "--since or --until, or give --all to retry every one."
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
