"""The admin's replay action with wildcard receivers, which receive several selected types."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from django_domain_events import publish, receiver
from django_domain_events.models import Delivery

from .conftest import PINGED, Switches

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = reverse("admin:django_domain_events_outboxevent_changelist")


def test_a_wildcard_receiver_of_several_selected_types_is_offered_once(
    superuser_client: Client, switches: Switches
) -> None:
    receiver("unit_admin.*", name="unit_admin.audit", dispatcher="deferred")(print)
    selected = [publish(PINGED, {}), publish("unit_admin.ponged", {})]

    page = superuser_client.post(
        EVENTS,
        {"action": "replay_selected_events", ACTION_CHECKBOX_NAME: [str(pk) for pk in selected]},
    )

    assert page.status_code == 200
    offered = [value for value, _label in page.context["form"].fields["receivers"].choices]
    assert offered.count("unit_admin.audit") == 1
    assert Delivery.objects.filter(receiver="unit_admin.audit").count() == 2
