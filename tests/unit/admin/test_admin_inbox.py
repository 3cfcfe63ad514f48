"""Consumed messages in the admin: the list, the read-only page with the kept message and the
link to a carried event of this outbox, and the retry action behind its permission."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_domain_events import publish
from django_domain_events.declaration.registry import Registry
from django_domain_events.integration.consumers import consumer
from django_domain_events.integration.inbox import InboxMessage, InboxOutcome
from django_domain_events.integration.messages import Message, to_binary
from django_domain_events.models import OutboxEvent
from tests.unit.admin.conftest import HOSTILE, login, staff_with

CHANGELIST = "admin:django_domain_events_inboxmessage_changelist"


def dead_row(event_id: uuid.UUID | None = None) -> InboxMessage:
    message = Message(
        id=str(event_id or uuid.uuid4()),
        source="//shop",
        type="unit_admin_inbox.settled",
        time=timezone.now(),
        data=json.dumps({"payment_id": 7, "note": HOSTILE}).encode(),
    )
    headers, body = to_binary(message)
    return InboxMessage.objects.create(
        message_id=message.id,
        receiver="billing.record",
        source=message.source,
        event_type=message.type,
        event_id=event_id or uuid.UUID(message.id),
        received_at=timezone.now(),
        outcome=InboxOutcome.DEAD,
        attempts=5,
        last_error=f"RuntimeError: {HOSTILE}",
        raw_headers=headers,
        raw_body=body,
    )


@pytest.mark.django_db
def test_the_list_and_the_page_show_a_consumed_message_escaped_and_read_only(
    superuser_client: Client,
) -> None:
    row = dead_row()

    listed = superuser_client.get(reverse(CHANGELIST))
    page = superuser_client.get(
        reverse("admin:django_domain_events_inboxmessage_change", args=(row.pk,))
    )

    assert listed.status_code == 200
    assert "billing.record" in listed.content.decode()
    text = page.content.decode()
    assert page.status_code == 200
    assert HOSTILE not in text, "the error and the body are escaped"
    assert "json-key" in text, "the kept body is pretty-printed"
    assert str(row.event_id) in text
    assert 'name="_save"' not in text


@pytest.mark.django_db
def test_a_carried_event_of_this_outbox_is_linked(
    superuser_client: Client, receiver_registry: Registry
) -> None:
    with transaction.atomic():
        publish("unit_admin_inbox.settled", {"payment_id": 7})
    event = OutboxEvent.objects.get()
    row = dead_row(event.pk)

    page = superuser_client.get(
        reverse("admin:django_domain_events_inboxmessage_change", args=(row.pk,))
    )

    link = reverse("admin:django_domain_events_outboxevent_change", args=(event.pk,))
    assert f'href="{link}"' in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_retry_is_offered_only_with_its_permission_and_reruns_the_message(
    receiver_registry: Registry,
) -> None:
    ran: list[Any] = []

    @consumer("unit_admin_inbox.settled", name="billing.record")
    def record(event: Any) -> None:
        ran.append(event.payload["payment_id"])

    row = dead_row()
    viewer = login(staff_with("view_inboxmessage", username="viewer"))
    retrier = login(staff_with("view_inboxmessage", "retry_inboxmessage", username="retrier"))
    form = {"action": "retry_selected_messages", "_selected_action": [str(row.pk)]}

    assert "retry_selected_messages" not in viewer.get(reverse(CHANGELIST)).content.decode()
    viewer.post(reverse(CHANGELIST), form)
    assert ran == []
    retrier.post(reverse(CHANGELIST), form)

    assert ran == [7]
    row.refresh_from_db()
    assert row.outcome == InboxOutcome.PROCESSED
