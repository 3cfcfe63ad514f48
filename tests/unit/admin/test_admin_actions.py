"""Retrying deliveries and replaying events from the admin: each behind its own permission and
a confirmation page, changing exactly the selected rows, logged, and reported."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from django_domain_events import publish
from django_domain_events.admin import actions
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

from .conftest import PINGED, Switches, login, staff_with

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = reverse("admin:django_domain_events_outboxevent_changelist")
DELIVERIES = reverse("admin:django_domain_events_delivery_changelist")


def post_action(
    client: Client, url: str, action: str, selected: list[Any], **extra: Any
) -> HttpResponse:
    data: dict[str, Any] = {
        "action": action,
        ACTION_CHECKBOX_NAME: [str(pk) for pk in selected],
        **extra,
    }
    return client.post(url, data)  # type: ignore[return-value]


def messages_of(response: HttpResponse) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


def states() -> dict[str, str]:
    return dict(Delivery.objects.values_list("receiver", "state"))


def test_retry_asks_for_confirmation_and_changes_nothing_until_then(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})
    before = states()

    page = post_action(
        superuser_client,
        DELIVERIES,
        "retry_selected_deliveries",
        list(Delivery.objects.values_list("pk", flat=True)),
    )

    assert page.status_code == 200
    assert page.context["retryable_count"] == 2
    assert page.context["skipped_count"] == 1
    assert 'name="confirmed" value="yes"' in page.content.decode()
    assert states() == before


def test_retry_runs_exactly_the_selected_failed_and_dead_deliveries_again(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {"n": 1})
    publish(PINGED, {"n": 2})
    selected = Delivery.objects.filter(
        event__payload__n=1,
        receiver__in=["unit_admin.flaky", "unit_admin.fragile", "unit_admin.ok"],
    )
    switches.failing.clear()
    switches.runs.clear()

    done = post_action(
        superuser_client,
        DELIVERIES,
        "retry_selected_deliveries",
        list(selected.values_list("pk", flat=True)),
        confirmed="yes",
    )

    assert done.status_code == 302
    by_event = {
        (row.event.payload["n"], row.receiver): row.state
        for row in Delivery.objects.select_related("event")
    }
    assert by_event == {
        (1, "unit_admin.ok"): DeliveryState.DELIVERED,
        (1, "unit_admin.flaky"): DeliveryState.DELIVERED,
        (1, "unit_admin.fragile"): DeliveryState.DELIVERED,
        (2, "unit_admin.ok"): DeliveryState.DELIVERED,
        (2, "unit_admin.flaky"): DeliveryState.FAILED,
        (2, "unit_admin.fragile"): DeliveryState.DEAD,
    }
    # The delivered one was not run again; the two that failed were, once each.
    assert sorted(name for name, _payload in switches.runs) == [
        "unit_admin.flaky",
        "unit_admin.fragile",
    ]
    # A retried delivery starts a fresh set of attempts.
    retried = Delivery.objects.get(event__payload__n=1, receiver="unit_admin.flaky")
    assert retried.attempts == 1
    logged = LogEntry.objects.filter(action_flag=CHANGE)
    assert sorted(entry.object_id for entry in logged) == sorted(
        str(pk)
        for pk in selected.filter(
            receiver__in=["unit_admin.flaky", "unit_admin.fragile"]
        ).values_list("pk", flat=True)
    )
    assert messages_of(done) == [
        "2 deliveries retried with a fresh set of attempts; they are being dispatched."
    ]


def test_retry_needs_the_retry_permission(switches: Switches) -> None:
    publish(PINGED, {})
    viewer = login(staff_with("view_delivery", "view_outboxevent"))
    retrier = login(
        staff_with("view_delivery", "view_outboxevent", "retry_delivery", username="retrier")
    )
    dead = Delivery.objects.get(receiver="unit_admin.fragile")

    refused = post_action(
        viewer, DELIVERIES, "retry_selected_deliveries", [dead.pk], confirmed="yes"
    )
    dead.refresh_from_db()
    assert dead.state == DeliveryState.DEAD
    assert refused.status_code == 200  # the list again, with Django's "no action" note

    switches.failing.clear()
    allowed = post_action(
        retrier, DELIVERIES, "retry_selected_deliveries", [dead.pk], confirmed="yes"
    )
    dead.refresh_from_db()
    assert allowed.status_code == 302
    assert dead.state == DeliveryState.DELIVERED


def test_replay_offers_the_registered_receivers_of_the_selected_types(
    superuser_client: Client, switches: Switches
) -> None:
    event_id = publish(PINGED, {})

    page = post_action(superuser_client, EVENTS, "replay_selected_events", [event_id])

    assert page.status_code == 200
    offered = [value for value, _label in page.context["form"].fields["receivers"].choices]
    assert offered == ["unit_admin.ok", "unit_admin.flaky", "unit_admin.fragile"]
    assert Delivery.objects.count() == 3


def test_replay_writes_and_runs_new_deliveries_for_the_chosen_receivers(
    superuser_client: Client, switches: Switches
) -> None:
    first = publish(PINGED, {"n": 1})
    second = publish(PINGED, {"n": 2})
    untouched = publish(PINGED, {"n": 3})
    switches.runs.clear()

    done = post_action(
        superuser_client,
        EVENTS,
        "replay_selected_events",
        [first, second],
        confirmed="yes",
        receivers=["unit_admin.ok"],
    )

    assert done.status_code == 302
    assert sorted(switches.runs, key=str) == [
        ("unit_admin.ok", {"n": 1}),
        ("unit_admin.ok", {"n": 2}),
    ]
    counts = {
        event_id: Delivery.objects.filter(event_id=event_id).count()
        for event_id in (first, second, untouched)
    }
    assert counts == {first: 4, second: 4, untouched: 3}
    replayed = Delivery.objects.filter(event_id=first, receiver="unit_admin.ok").order_by("id")
    assert [row.state for row in replayed] == [DeliveryState.DELIVERED] * 2
    assert sorted(entry.object_id for entry in LogEntry.objects.all()) == sorted(
        [str(first), str(second)]
    )
    assert LogEntry.objects.first().change_message == "Replayed to: unit_admin.ok."  # type: ignore[union-attr]
    assert messages_of(done) == ["2 events replayed: 2 new deliveries are being dispatched."]


def test_replay_without_a_receiver_chosen_asks_again(
    superuser_client: Client, switches: Switches
) -> None:
    event_id = publish(PINGED, {})

    page = post_action(
        superuser_client, EVENTS, "replay_selected_events", [event_id], confirmed="yes"
    )

    assert page.status_code == 200
    assert "Choose at least one receiver." in page.content.decode()
    assert Delivery.objects.count() == 3


def test_replay_refuses_receivers_that_are_not_registered(
    superuser_client: Client, switches: Switches
) -> None:
    event_id = publish(PINGED, {})

    page = post_action(
        superuser_client,
        EVENTS,
        "replay_selected_events",
        [event_id],
        confirmed="yes",
        receivers=["os.system"],
    )

    assert page.status_code == 200
    assert Delivery.objects.count() == 3


def test_replay_needs_the_replay_permission(switches: Switches) -> None:
    event_id = publish(PINGED, {})
    viewer = login(staff_with("view_delivery", "view_outboxevent"))

    page = viewer.get(EVENTS).content.decode()
    refused = post_action(
        viewer,
        EVENTS,
        "replay_selected_events",
        [event_id],
        confirmed="yes",
        receivers=["unit_admin.ok"],
    )

    assert "replay_selected_events" not in page
    assert refused.status_code == 200
    assert Delivery.objects.count() == 3


def test_an_action_over_too_many_rows_is_refused(
    superuser_client: Client, switches: Switches, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "ACTION_ROW_LIMIT", 1)
    ids = [publish(PINGED, {}), publish(PINGED, {})]

    done = post_action(
        superuser_client,
        EVENTS,
        "replay_selected_events",
        ids,
        confirmed="yes",
        receivers=["unit_admin.ok"],
    )

    assert done.status_code == 302
    assert "More than 1 rows are selected" in messages_of(done)[0]
    assert Delivery.objects.count() == 6
    assert OutboxEvent.objects.count() == 2


def test_select_all_keeps_meaning_the_filtered_list_through_the_confirmation(
    superuser_client: Client, switches: Switches
) -> None:
    for n in range(3):
        publish(PINGED, {"n": n})
    one_on_the_page = Delivery.objects.filter(receiver="unit_admin.fragile").first()
    assert one_on_the_page is not None
    filtered = f"{DELIVERIES}?state__exact=dead"

    page = post_action(
        superuser_client,
        filtered,
        "retry_selected_deliveries",
        [one_on_the_page.pk],
        select_across="1",
    )
    assert page.context["retryable_count"] == 3
    assert 'name="select_across" value="1"' in page.content.decode()

    switches.failing.clear()
    post_action(
        superuser_client,
        filtered,
        "retry_selected_deliveries",
        [one_on_the_page.pk],
        select_across="1",
        confirmed="yes",
    )

    assert set(states_of("unit_admin.fragile")) == {DeliveryState.DELIVERED}
    # Failed deliveries were outside the filter: left alone.
    assert set(states_of("unit_admin.flaky")) == {DeliveryState.FAILED}


def states_of(receiver_name: str) -> list[str]:
    return list(Delivery.objects.filter(receiver=receiver_name).values_list("state", flat=True))
