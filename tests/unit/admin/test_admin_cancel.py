"""Cancelling deliveries from the admin: behind the cancel permission and a confirmation page,
owed ones only, logged and reported; and scheduled deliveries shown with when they are due."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from django.urls import reverse

from django_domain_events import publish
from django_domain_events.models import Delivery, DeliveryState

from .conftest import PINGED, Switches, login, staff_with
from .test_admin_actions import DELIVERIES, messages_of, post_action

pytestmark = pytest.mark.django_db(transaction=True)

CANCEL = "cancel_selected_deliveries"


def test_cancel_confirms_then_cancels_owed_ones_only_and_reports_both_counts(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})  # ok delivered, flaky failed, fragile dead
    publish(PINGED, {"later": True}, delay=dt.timedelta(hours=1))  # three scheduled
    everything = list(Delivery.objects.values_list("pk", flat=True))

    page = post_action(superuser_client, DELIVERIES, CANCEL, everything)

    assert page.status_code == 200
    assert (page.context["cancellable_count"], page.context["skipped_count"]) == (4, 2)
    assert not Delivery.objects.filter(state=DeliveryState.CANCELLED).exists()

    done = post_action(superuser_client, DELIVERIES, CANCEL, everything, confirmed="yes")

    assert done.status_code == 302
    assert messages_of(done) == ["4 deliveries cancelled; 2 skipped: settled already, or running."]
    states = sorted(Delivery.objects.values_list("receiver", "state"))
    assert states == sorted(
        [
            ("unit_admin.ok", DeliveryState.DELIVERED),
            ("unit_admin.fragile", DeliveryState.DEAD),
            ("unit_admin.flaky", DeliveryState.CANCELLED),
            ("unit_admin.ok", DeliveryState.CANCELLED),
            ("unit_admin.flaky", DeliveryState.CANCELLED),
            ("unit_admin.fragile", DeliveryState.CANCELLED),
        ]
    )
    logged = LogEntry.objects.filter(action_flag=CHANGE, change_message="Cancelled.")
    assert logged.count() == 4


def test_cancel_needs_the_cancel_permission(switches: Switches) -> None:
    publish(PINGED, {}, delay=dt.timedelta(hours=1))
    retrier = login(
        staff_with("view_delivery", "view_outboxevent", "retry_delivery", username="retrier")
    )
    canceller = login(
        staff_with("view_delivery", "view_outboxevent", "cancel_delivery", username="canceller")
    )
    selected = list(Delivery.objects.values_list("pk", flat=True))

    assert CANCEL not in retrier.get(DELIVERIES).content.decode()
    post_action(retrier, DELIVERIES, CANCEL, selected, confirmed="yes")
    assert not Delivery.objects.filter(state=DeliveryState.CANCELLED).exists()

    assert CANCEL in canceller.get(DELIVERIES).content.decode()
    post_action(canceller, DELIVERIES, CANCEL, selected, confirmed="yes")
    assert Delivery.objects.filter(state=DeliveryState.CANCELLED).count() == 3


def test_the_list_shows_when_a_scheduled_delivery_is_due_and_filters_by_the_new_states(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {}, deliver_at=dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC))

    page = superuser_client.get(DELIVERIES).content.decode()

    assert "due" in page
    assert "2031-05-06" in page
    assert "dde-state-scheduled" in page
    scheduled = superuser_client.get(DELIVERIES, {"state__exact": "scheduled"})
    assert len(scheduled.context["cl"].result_list) == 3
    cancelled = superuser_client.get(DELIVERIES, {"state__exact": "cancelled"})
    assert len(cancelled.context["cl"].result_list) == 0


def test_a_scheduled_delivery_s_page_offers_cancel(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {}, delay=dt.timedelta(hours=1))
    delivery = Delivery.objects.filter(receiver="unit_admin.ok").get()

    page = superuser_client.get(
        reverse("admin:django_domain_events_delivery_change", args=(delivery.pk,))
    )

    assert ("cancel_selected_deliveries", "Cancel") in page.context["delivery_actions"]
