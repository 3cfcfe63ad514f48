"""Changing stored outbox rows behind the app's back, as a hand edit or a bad migration
would: for the tests of what reading such rows does."""

from __future__ import annotations

import uuid

from django.db import connection

from django_domain_events.models import OutboxEvent

JSON_COLUMNS = ("payload", "headers")


def nested_json(depth: int) -> str:
    """The text of a JSON object nested ``depth`` levels deep: {"a": {"a": ... 1}}."""
    return '{"a":' * depth + "1" + "}" * depth


def change_event(event_id: uuid.UUID, **columns: object) -> None:
    """Set columns of the event row ``event_id`` with SQL (JSON columns from their text)."""
    postgres = connection.vendor == "postgresql"
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    pk = event_id if postgres else event_id.hex
    with connection.cursor() as cursor:
        for column, value in columns.items():
            cast = "::jsonb" if postgres and column in JSON_COLUMNS else ""
            cursor.execute(
                f"UPDATE {table} SET {connection.ops.quote_name(column)} = %s{cast} WHERE id = %s",
                [value, pk],
            )
