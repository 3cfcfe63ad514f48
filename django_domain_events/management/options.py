"""Options the management commands share: the outbox's database, batch sizes, and selection
errors reported as command errors. Kept out of ``commands/`` so that Django does not take it for
a command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError, CommandParser
from django.db import connections

from django_domain_events.operations.selection import SelectionError


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
