"""``manage.py prune_events``: delete settled events past their retention, in batches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.management.options import (
    add_database_argument,
    check_batch_size,
    database_alias,
    selection_errors,
)
from django_domain_events.operations.pruning import BATCH_SIZE, PruneResult, prune_events
from django_domain_events.operations.selection import parse_duration


class Command(BaseCommand):
    help = (
        "Delete events whose deliveries are all settled and past their retention "
        "(DOMAIN_EVENTS['RETENTION'] and the event classes' retention; by default delivered "
        "ones after PRUNE_RETENTION_DAYS, dead ones never), with those deliveries and their "
        "attempt history. --older-than replaces every retention. Safe while relays and "
        "workers run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default=None,
            help=(
                "Ignore the retentions: delete events all delivered before this long ago: 30d, "
                "12h, 90m, 2w; a bare number is days."
            ),
        )
        parser.add_argument(
            "--include-dead",
            action="store_true",
            help=(
                "Also delete events whose dead deliveries are older than that (without "
                "--older-than: dead ones kept for ever go after their delivered retention)."
            ),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"Events deleted per transaction (default {BATCH_SIZE}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        text = options["older_than"]
        older_than = None
        if text is not None:
            with selection_errors():
                older_than = parse_duration(text, option="--older-than")
        check_batch_size(options["batch_size"])
        dry_run: bool = options["dry_run"]
        result = prune_events(
            older_than,
            using=database_alias(options["database"]),
            include_dead=options["include_dead"],
            batch_size=options["batch_size"],
            dry_run=dry_run,
            on_batch=self._progress,
        )
        what = "delivered or dead" if options["include_dead"] else "delivered"
        which = f"older than {text} (all {what})" if text is not None else "past their retention"
        if dry_run:
            self.stdout.write(
                f"Dry run: {result.events} events {which} would be deleted, with "
                f"{result.deliveries} deliveries and {result.attempts} failed attempts of their "
                f"history."
            )
            return
        self.stdout.write(
            f"Deleted {result.events} events {which} and {result.deliveries} deliveries, in "
            f"{result.batches} batches."
        )
        if result.attempts:
            self.stdout.write(f"Deleted {result.attempts} failed attempts of their history.")
        if result.keys:
            self.stdout.write(f"Forgot {result.keys} ordering keys with nothing left to order.")

    def _progress(self, batch: PruneResult) -> None:
        self.stdout.write(f"Deleted {batch.events} events, {batch.deliveries} deliveries.")
