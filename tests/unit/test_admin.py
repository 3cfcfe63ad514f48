"""The outbox in the admin: pages render, nothing is editable, payloads are escaped."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from django_domain_events import publish
from django_domain_events.models import Delivery, OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def admin_client_logged_in() -> Client:
    User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    assert client.login(username="root", password="pw")
    return client


@pytest.fixture
def event() -> OutboxEvent:
    event_id = publish("unit_admin.noted", {"note": HOSTILE})
    return OutboxEvent.objects.get(pk=event_id)


def test_every_outbox_page_renders_for_a_superuser(
    admin_client_logged_in: Client, event: OutboxEvent
) -> None:
    from django_domain_events import receiver
    from django_domain_events.registry import registry

    with registry.isolated():

        @receiver("unit_admin.pinged", name="unit_admin.fails")
        def fails(event: Any) -> None:
            raise ValueError(HOSTILE)

        publish("unit_admin.pinged", {})
    delivery = Delivery.objects.get(receiver="unit_admin.fails")
    urls = [
        reverse("admin:django_domain_events_outboxevent_changelist"),
        reverse("admin:django_domain_events_outboxevent_changelist")
        + "?event_type=unit_admin.noted",
        reverse("admin:django_domain_events_outboxevent_change", args=(event.pk,)),
        reverse("admin:django_domain_events_delivery_changelist") + "?state__exact=failed",
        reverse("admin:django_domain_events_delivery_change", args=(delivery.pk,)),
    ]
    for url in urls:
        assert admin_client_logged_in.get(url).status_code == 200, url


def test_payload_and_errors_are_shown_escaped(
    admin_client_logged_in: Client, event: OutboxEvent
) -> None:
    page = admin_client_logged_in.get(
        reverse("admin:django_domain_events_outboxevent_change", args=(event.pk,))
    ).content.decode()

    assert HOSTILE not in page
    assert "&lt;script&gt;" in page


def test_nothing_can_be_added_or_changed(
    admin_client_logged_in: Client, event: OutboxEvent
) -> None:
    add = admin_client_logged_in.get(reverse("admin:django_domain_events_outboxevent_add"))
    posted = admin_client_logged_in.post(
        reverse("admin:django_domain_events_outboxevent_change", args=(event.pk,)),
        {"event_type": "changed", "payload": "{}"},
    )

    assert add.status_code == 403
    assert posted.status_code == 403
    event.refresh_from_db()
    assert event.event_type == "unit_admin.noted"
    assert event.payload == {"note": HOSTILE}
