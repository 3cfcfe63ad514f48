"""Erasure on PostgreSQL: the subject's events are found by JSON key lookups on the jsonb
payload (numbers and strings, nested keys), rewritten in locked batches, and only their
sensitive values change."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from django_domain_events import NamedEvent, publish_many
from django_domain_events.declaration.sensitivity import ERASED
from django_domain_events.models import OutboxEvent
from django_domain_events.operations.erasure import ERASED_AT, erase_sensitive
from tests.sensitive_events import (
    EMAIL,
    NEWSLETTER,
    OTHER_EMAIL,
    STREET,
    Address,
    Customer,
    CustomerRegistered,
    TicketOpened,
    newsletter_declared,
)

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stored() -> Any:
    with newsletter_declared():
        publish_many(
            [
                CustomerRegistered(
                    customer_id=7, email=EMAIL, address=Address(street=STREET, city="Lyon")
                ),
                CustomerRegistered(customer_id=8, email=OTHER_EMAIL),
                NamedEvent(NEWSLETTER, {"user_id": "7", "email": EMAIL}),
                NamedEvent(NEWSLETTER, {"user_id": 8, "email": OTHER_EMAIL}),
                TicketOpened(ticket=1, customer=Customer(id="7", email=EMAIL)),
                TicketOpened(ticket=2, customer=Customer(id="8", email=OTHER_EMAIL)),
            ]
        )
        yield


def emails() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for event in OutboxEvent.objects.order_by("id"):
        payload = event.payload
        email = payload["customer"]["email"] if "customer" in payload else payload["email"]
        found.setdefault(event.event_type.split(".")[1], []).append(email)
    return found


def test_only_the_subject_s_values_are_erased_on_postgres(stored: None) -> None:
    result = erase_sensitive("7", batch_size=1)

    assert emails() == {
        "customer_registered": [ERASED, OTHER_EMAIL],
        "newsletter_signup": [ERASED, OTHER_EMAIL],
        "ticket_opened": [ERASED, OTHER_EMAIL],
    }
    typed = OutboxEvent.objects.get(payload__customer_id=7)
    assert typed.payload["address"] == {"street": ERASED, "city": "Lyon"}
    assert result.total_events == 3
    assert result.total_values == 4
    assert OutboxEvent.objects.filter(headers__has_key=ERASED_AT).count() == 3


def test_the_command_on_postgres_leaves_others_and_dry_runs_write_nothing(stored: None) -> None:
    out = io.StringIO()
    call_command("erase_sensitive", "--subject", "8", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Dry run: would erase 3 values in 3 events")
    assert ERASED not in str(emails())

    call_command("erase_sensitive", "--subject", "8", "--event-type", NEWSLETTER, stdout=out)

    assert emails()["newsletter_signup"] == [EMAIL, ERASED]
    assert emails()["customer_registered"] == [EMAIL, OTHER_EMAIL]
