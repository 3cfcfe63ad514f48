"""The strings stored in the outbox's identifier columns (event type, ordering key,
correlation id): checked at publish, so a value the column cannot hold is refused with an
error naming it, before any SQL."""

from __future__ import annotations

from typing import Any

from django_domain_events.exceptions import PayloadError

MAX_IDENTIFIER_LENGTH = 255
"""Longest event type, ordering key or correlation id, in characters (the columns' length)."""


def identifier_problem(value: Any) -> str | None:
    """What keeps ``value`` out of an identifier column, or None if nothing does."""
    if type(value) is not str:
        return f"is {type(value).__qualname__} {value!r:.60}; it must be a string"
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return (
            f"is {len(value)} characters long; the longest allowed is {MAX_IDENTIFIER_LENGTH} "
            f"(the column's length)"
        )
    if "\x00" in value:
        return "holds a NUL character (\\x00), which PostgreSQL cannot store; remove it"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone surrogate, which cannot be encoded as UTF-8; remove it"
    return None


def check_identifier(value: Any, argument: str) -> str:
    """``value``, if an identifier column can hold it; else ``PayloadError`` naming
    ``argument`` and the rule it breaks."""
    problem = identifier_problem(value)
    if problem is not None:
        raise PayloadError(f"{argument} {problem}.")
    return str(value)
