"""Options the management commands share: the outbox's database, batch sizes, and selection
errors reported as command errors. Kept out of ``commands/`` so that Django does not take it for
a command."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connections

from django_domain_events.operations.selection import (
    DeliverySelection,
    SelectionError,
    parse_ids,
    parse_optional_moment,
)


def add_database_argument(parser: CommandParser) -> None:
    """Add ``--database``, the alias of the outbox's database."""
    parser.add_argument(
        "--database",
        default=None,
        help="Database alias of the outbox (default: where the router writes deliveries).",
    )


def database_alias(database: str | None) -> str | None:
    """The ``--database`` option checked against ``DATABASES``."""
    if database is not None and database not in connections.settings:
        raise CommandError(
            f"--database {database!r} is not in DATABASES; use one of "
            f"{', '.join(sorted(connections.settings))}."
        )
    return database


def check_batch_size(batch_size: int | None) -> None:
    """Refuse a ``--batch-size`` below 1 (None: the command's default)."""
    if batch_size is not None and batch_size < 1:
        raise CommandError(f"--batch-size is {batch_size}; give a number >= 1.")


@contextmanager
def selection_errors() -> Iterator[None]:
    """Report a ``SelectionError`` raised in the block as a ``CommandError``, its message
    unchanged."""
    try:
        yield
    except SelectionError as exc:
        raise CommandError(str(exc)) from exc


def add_delivery_selection_arguments(
    parser: CommandParser, *, states: Sequence[str], state_help: str, all_help: str
) -> None:
    """Add the options that choose deliveries: ``--id``, ``--event``, ``--type``,
    ``--receiver``, ``--since``, ``--until``, ``--state`` (one of ``states``) and ``--all``."""
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
        choices=[str(state) for state in states],
        default=None,
        help=state_help,
    )
    parser.add_argument("--all", action="store_true", help=all_help)


def delivery_selection(
    options: dict[str, Any], *, default_states: Sequence[str], verb: str, every: str
) -> DeliverySelection:
    """The deliveries the options of ``add_delivery_selection_arguments()`` choose; without any
    (nor ``--all``), a ``SelectionError`` saying how to ``verb`` them (``every``: what
    ``--all`` takes)."""
    selection = DeliverySelection(
        states=tuple(options["state"] or default_states),
        ids=tuple(parse_ids(options["id"], option="--id")),
        event_ids=tuple(parse_ids(options["event"], option="--event")),
        event_types=tuple(options["type"]),
        receivers=tuple(options["receiver"]),
        since=parse_optional_moment(options["since"], option="--since"),
        until=parse_optional_moment(options["until"], option="--until"),
    )
    if selection.is_empty and not options["all"]:
        raise SelectionError(
            f"Select the deliveries to {verb} with --id, --event, --type, --receiver, "
            f"--since or --until, or give --all to {verb} {every}."
        )
    return selection
