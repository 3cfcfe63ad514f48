"""``manage.py erase_sensitive``: blank a data subject's sensitive values in stored events."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_domain_events.declaration.sensitivity import ERASED
from django_domain_events.management.options import (
    add_database_argument,
    check_batch_size,
    database_alias,
    selection_errors,
)
from django_domain_events.operations.erasure import BATCH_SIZE, erase_sensitive


class Command(BaseCommand):
    help = (
        f"Erase a data subject's sensitive values: in every stored event whose data subject "
        f"field holds --subject, replace each sensitive value with {ERASED!r}. Event rows and "
        f"deliveries stay (the audit trail); each event's headers record when. Narrow with "
        f"--event-type; --dry-run counts and writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--subject", required=True, help="The data subject's id, as its events store it."
        )
        parser.add_argument(
            "--event-type",
            "--type",
            dest="event_type",
            action="append",
            default=[],
            help="Erase only events of this type (repeatable; default: every erasable type).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Events rewritten per transaction (default: {BATCH_SIZE}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be erased; write nothing."
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        check_batch_size(options["batch_size"])
        dry_run: bool = options["dry_run"]
        with selection_errors():
            result = erase_sensitive(
                options["subject"],
                event_types=tuple(options["event_type"]),
                using=database_alias(options["database"]),
                batch_size=options["batch_size"] or BATCH_SIZE,
                dry_run=dry_run,
                on_batch=None if dry_run else self._progress,
            )
        by_type = ", ".join(
            f"{event_type}: {count} events, {result.values[event_type]} values"
            for event_type, count in result.events.items()
        )
        summary = f"{result.total_values} values in {result.total_events} events"
        if by_type:
            summary += f" ({by_type})"
        if dry_run:
            self.stdout.write(f"Dry run: would erase {summary}.")
            return
        self.stdout.write(
            f"Erased {summary}; scrubbed {result.scrubbed_failures} recorded failures."
        )

    def _progress(self, event_type: str, events: int, values: int) -> None:
        self.stdout.write(f"{event_type}: {values} values in {events} events.")
