"""Changing stored outbox rows behind the app's back, as a hand edit or a bad migration
would: for the tests of what reading such rows does."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.db import connection

from django_domain_events.declaration.payload_types import MARIADB_PAYLOAD_DEPTH
from django_domain_events.models import OutboxEvent

JSON_COLUMNS = ("payload", "headers")

ON_MARIADB = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"
STORABLE_DEPTH = MARIADB_PAYLOAD_DEPTH if ON_MARIADB else None
"""The deepest JSON the test database's columns store, or None for no limit of its own:
MariaDB's ``JSON_VALID()`` check refuses a deeper document."""

stores_any_depth = pytest.mark.skipif(
    ON_MARIADB,
    reason="MariaDB's JSON columns refuse a document nested 32 levels or deeper, so no stored "
    "row can be as deep as this test needs",
)


def nested_json(depth: int) -> str:
    """The text of a JSON object nested ``depth`` levels deep: {"a": {"a": ... 1}}."""
    return '{"a":' * depth + "1" + "}" * depth


UNDECODABLE_PAYLOAD, UNDECODABLE_BECAUSE = (
    ('"not an object"', "not a JSON object") if ON_MARIADB else (nested_json(990), "nested")
)
"""The text of a stored payload no publish writes and no delivery can decode, and a word of
the error that says why: nested 990 levels deep, or a JSON string on MariaDB, whose columns
refuse that depth."""


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
