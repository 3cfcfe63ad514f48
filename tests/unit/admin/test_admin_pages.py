"""The outbox in the admin: pages render, nothing is editable, payloads are escaped, searches
and filters find the right rows, and a page costs the same queries whatever its length."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_domain_events import NamedEvent, publish, publish_many, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.stored_rows import change_event, nested_json, stores_any_depth

from .conftest import HOSTILE, PINGED, Switches

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = reverse("admin:django_domain_events_outboxevent_changelist")
DELIVERIES = reverse("admin:django_domain_events_delivery_changelist")


def event_page(pk: object) -> str:
    return reverse("admin:django_domain_events_outboxevent_change", args=(pk,))


def delivery_page(pk: object) -> str:
    return reverse("admin:django_domain_events_delivery_change", args=(pk,))


@pytest.fixture
def noted() -> OutboxEvent:
    """An event without receivers whose payload holds markup."""
    return OutboxEvent.objects.get(pk=publish("unit_admin.noted", {"note": HOSTILE}))


def test_every_outbox_page_renders_for_a_superuser(
    superuser_client: Client, switches: Switches, noted: OutboxEvent
) -> None:
    pinged = publish(PINGED, {"n": 1})
    failed = Delivery.objects.get(receiver="unit_admin.flaky")
    day = noted.occurred_at
    urls = [
        reverse("admin:app_list", args=("django_domain_events",)),
        EVENTS,
        f"{EVENTS}?event_type=unit_admin.noted",
        f"{EVENTS}?delivery_state=dead",
        f"{EVENTS}?occurred_at__year={day.year}",
        f"{EVENTS}?occurred_at__year={day.year}&occurred_at__month={day.month}",
        f"{EVENTS}?occurred_at__year={day.year}&occurred_at__month={day.month}"
        f"&occurred_at__day={day.day}",
        f"{EVENTS}?q={pinged}",
        event_page(noted.pk),
        event_page(pinged),
        DELIVERIES,
        f"{DELIVERIES}?state__exact=failed",
        f"{DELIVERIES}?receiver=unit_admin.flaky",
        f"{DELIVERIES}?dispatcher=sync",
        f"{DELIVERIES}?q={pinged}",
        delivery_page(failed.pk),
        reverse("admin:django_domain_events_outboxevent_dashboard"),
    ]
    for url in urls:
        assert superuser_client.get(url).status_code == 200, url


def test_the_app_index_links_to_the_dashboard(superuser_client: Client) -> None:
    page = superuser_client.get(reverse("admin:app_list", args=("django_domain_events",)))

    assert reverse("admin:django_domain_events_outboxevent_dashboard") in page.content.decode()


def test_payload_is_shown_escaped_and_highlighted(
    superuser_client: Client, noted: OutboxEvent
) -> None:
    page = superuser_client.get(event_page(noted.pk)).content.decode()

    assert HOSTILE not in page
    assert (
        '<span class="json-string">&quot;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;' in page
    )
    assert '<span class="json-key">&quot;note&quot;</span>' in page


def test_errors_and_tracebacks_are_shown_escaped(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})
    failed = Delivery.objects.get(receiver="unit_admin.flaky")

    pages = [
        superuser_client.get(DELIVERIES).content.decode(),
        superuser_client.get(delivery_page(failed.pk)).content.decode(),
    ]

    for page in pages:
        assert HOSTILE not in page
        assert "&lt;script&gt;" in page
    assert '<details class="dde-traceback">' in pages[1]
    assert "Traceback (most recent call last)" in pages[1]


def test_nothing_can_be_added_or_changed(superuser_client: Client, noted: OutboxEvent) -> None:
    add = superuser_client.get(reverse("admin:django_domain_events_outboxevent_add"))
    posted = superuser_client.post(event_page(noted.pk), {"event_type": "changed", "payload": "{}"})

    assert add.status_code == 403
    assert posted.status_code == 403
    noted.refresh_from_db()
    assert noted.event_type == "unit_admin.noted"
    assert noted.payload == {"note": HOSTILE}


def test_a_delivery_state_cannot_be_changed_by_form(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})
    dead = Delivery.objects.get(receiver="unit_admin.fragile")

    posted = superuser_client.post(delivery_page(dead.pk), {"state": "delivered", "attempts": 0})

    assert posted.status_code == 403
    dead.refresh_from_db()
    assert dead.state == DeliveryState.DEAD
    assert dead.attempts == 1


def test_delete_is_refused_unless_the_setting_allows_it(
    superuser_client: Client, noted: OutboxEvent
) -> None:
    delete = reverse("admin:django_domain_events_outboxevent_delete", args=(noted.pk,))

    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert OutboxEvent.objects.filter(pk=noted.pk).exists()

    with override_settings(DOMAIN_EVENTS={"ADMIN_ALLOW_DELETE": True}):
        assert superuser_client.post(delete, {"post": "yes"}).status_code == 302
    assert not OutboxEvent.objects.filter(pk=noted.pk).exists()


def test_each_event_shows_its_deliveries_by_state(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})

    page = superuser_client.get(EVENTS).content.decode()

    assert '<span class="dde-badge dde-state-delivered">1 delivered</span>' in page
    assert '<span class="dde-badge dde-state-failed">1 failed</span>' in page
    assert '<span class="dde-badge dde-state-dead">1 dead</span>' in page


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", [EVENTS, DELIVERIES, f"{EVENTS}?delivery_state=failed"])
def test_a_longer_page_takes_no_more_queries(
    superuser_client: Client, switches: Switches, url: str
) -> None:
    publish(PINGED, {"n": 0})
    short = queries_for(superuser_client, url)
    for n in range(1, 12):
        publish(PINGED, {"n": n})

    assert queries_for(superuser_client, url) == short
    assert short <= 12


@pytest.mark.parametrize("url", [EVENTS, DELIVERIES])
def test_the_lists_never_load_payloads(
    superuser_client: Client, switches: Switches, url: str
) -> None:
    publish(PINGED, {"big": "x" * 1000})

    with CaptureQueriesContext(connection) as queries:
        assert superuser_client.get(url).status_code == 200

    assert not any('."payload"' in query["sql"] for query in queries.captured_queries)


@pytest.mark.parametrize("url", [EVENTS, DELIVERIES])
def test_facet_counts_are_never_computed(superuser_client: Client, url: str) -> None:
    page = superuser_client.get(f"{url}?_facets=1")

    assert page.context["cl"].add_facets is False
    assert "Show counts" not in page.content.decode()


def test_events_made_together_show_different_short_ids(
    superuser_client: Client, switches: Switches
) -> None:
    # UUIDv7s made in the same minute share their first digits; the lists must not.
    publish_many([NamedEvent(PINGED, {"n": n}) for n in range(3)])

    events = superuser_client.get(EVENTS).content.decode()
    deliveries = superuser_client.get(DELIVERIES).content.decode()

    for page, rows in ((events, OutboxEvent.objects.all()), (deliveries, Delivery.objects.all())):
        shown = {row.pk.hex[-8:] for row in rows}
        assert len(shown) == len(rows)
        assert all(f'">{short}</span>' in page for short in shown)


def test_a_search_by_event_id_is_exact(superuser_client: Client, switches: Switches) -> None:
    wanted = publish(PINGED, {"n": 1}, correlation_id="order-7")
    publish(PINGED, {"n": 2}, correlation_id="order-8")

    with CaptureQueriesContext(connection) as queries:
        by_id = superuser_client.get(f"{EVENTS}?q={str(wanted).upper()}")
    by_correlation = superuser_client.get(f"{EVENTS}?q=order-7")

    assert [row.pk for row in by_id.context["cl"].result_list] == [wanted]
    assert [row.pk for row in by_correlation.context["cl"].result_list] == [wanted]
    # Compared as stored, so an index serves it; never UPPER(column) over every row.
    assert not any("UPPER(" in query["sql"] for query in queries.captured_queries)


def test_a_search_by_causation_id_finds_the_events_it_caused(
    superuser_client: Client, receiver_registry: Registry
) -> None:
    @receiver("unit_admin.cause", name="unit_admin.causes")
    def causes(event: object) -> None:
        publish("unit_admin.effect", {})

    cause = publish("unit_admin.cause", {})

    found = superuser_client.get(f"{EVENTS}?q={cause}").context["cl"].result_list
    event_types = sorted(row.event_type for row in found)

    assert event_types == ["unit_admin.cause", "unit_admin.effect"]


def test_deliveries_are_found_by_event_id_and_task_id(
    superuser_client: Client, switches: Switches
) -> None:
    event_id = publish(PINGED, {})
    publish(PINGED, {})
    Delivery.objects.filter(receiver="unit_admin.ok", event_id=event_id).update(task_id="task-42")

    by_event = superuser_client.get(f"{DELIVERIES}?q={event_id}").context["cl"].result_list
    by_task = superuser_client.get(f"{DELIVERIES}?q=task-42").context["cl"].result_list

    assert {row.event_id for row in by_event} == {event_id}
    assert len(by_event) == 3
    assert [row.receiver for row in by_task] == ["unit_admin.ok"]


def test_the_delivery_state_filter_keeps_events_with_such_a_delivery(
    superuser_client: Client, switches: Switches
) -> None:
    with_dead = publish(PINGED, {})
    switches.failing.clear()
    publish(PINGED, {})

    found = superuser_client.get(f"{EVENTS}?delivery_state=dead").context["cl"].result_list

    assert [row.pk for row in found] == [with_dead]


def test_filters_offer_the_stored_types_and_receivers(
    superuser_client: Client, switches: Switches, noted: OutboxEvent
) -> None:
    publish(PINGED, {})
    publish(PINGED, {})
    Delivery.objects.filter(receiver="unit_admin.ok").update(receiver="unit_admin.renamed")
    first, second = Delivery.objects.filter(receiver="unit_admin.renamed")
    Delivery.objects.filter(pk=first.pk).update(receiver="unit_admin.gone", state="dead")
    Delivery.objects.filter(pk=second.pk).update(receiver="unit_admin.gone_delivered")

    events = superuser_client.get(EVENTS).content.decode()
    deliveries = superuser_client.get(DELIVERIES).content.decode()

    assert "?event_type=unit_admin.noted" in events
    assert "?event_type=unit_admin.pinged" in events
    # A receiver that is no longer registered is still offered while it has dead letters (or
    # others that need attention): those are the rows to find. Its delivered rows alone are
    # history, reached by the receiver's name in the address.
    assert "?receiver=unit_admin.gone" in deliveries
    assert "?receiver=unit_admin.gone_delivered" not in deliveries
    # Every registered receiver is offered, with rows or without.
    assert "?receiver=unit_admin.ok" in deliveries
    assert "?receiver=unit_admin.flaky" in deliveries
    assert "?dispatcher=sync" in deliveries


def test_a_delivery_links_to_its_event_and_its_task_result(
    superuser_client: Client, switches: Switches
) -> None:
    event_id = publish(PINGED, {})
    delivery = Delivery.objects.get(receiver="unit_admin.ok")
    task_id = str(uuid.uuid4())
    Delivery.objects.filter(pk=delivery.pk).update(task_id=task_id)

    page = superuser_client.get(delivery_page(delivery.pk)).content.decode()

    assert event_page(event_id) in page
    task_results = reverse("admin:django_celery_results_taskresult_changelist")
    assert f'href="{task_results}?q={task_id}"' in page


def test_the_date_hierarchy_offers_the_days_that_have_events(
    superuser_client: Client, noted: OutboxEvent
) -> None:
    day = noted.occurred_at
    url = f"{EVENTS}?occurred_at__year={day.year}&occurred_at__month={day.month}"

    choices = superuser_client.get(url).context["cl"].date_hierarchy_choices()["choices"]

    assert [choice["link"] for choice in choices] == [
        f"?occurred_at__day={day.day}&occurred_at__month={day.month}&occurred_at__year={day.year}"
    ]


def test_the_date_hierarchy_drills_down_through_years_months_and_days(
    superuser_client: Client,
) -> None:
    for when in ("2025-01-03", "2025-01-20", "2025-03-05", "2026-02-01"):
        event_id = publish("unit_admin.dated", {})
        OutboxEvent.objects.filter(pk=event_id).update(
            occurred_at=dt.datetime.fromisoformat(f"{when}T12:00:00+00:00")
        )

    def titles(query: str) -> list[str]:
        choices = superuser_client.get(f"{EVENTS}{query}").context["cl"].date_hierarchy_choices()
        return [str(choice["title"]) for choice in choices["choices"]]

    assert titles("") == ["2025", "2026"]
    assert titles("?occurred_at__year=2025") == ["January 2025", "March 2025"]
    assert titles("?occurred_at__year=2025&occurred_at__month=1") == ["January 3", "January 20"]
    changelist = superuser_client.get(EVENTS).context["cl"]
    with CaptureQueriesContext(connection) as queries:
        changelist.date_hierarchy_choices()
    # The first row, the last row, and one query for every year between them.
    assert len(queries) == 3


def test_a_viewer_sees_the_pages_but_no_actions(viewer_client: Client, switches: Switches) -> None:
    publish(PINGED, {})

    events = viewer_client.get(EVENTS)
    deliveries = viewer_client.get(DELIVERIES)

    assert events.status_code == deliveries.status_code == 200
    assert "replay_selected_events" not in events.content.decode()
    assert "retry_selected_deliveries" not in deliveries.content.decode()


@stores_any_depth
def test_an_event_too_deeply_nested_to_decode_is_shown_and_deleted(
    superuser_client: Client, noted: OutboxEvent
) -> None:
    # Changed after publish, behind the app's back: the admin shows its text and deletes it.
    change_event(noted.pk, payload=nested_json(990))
    delete = reverse("admin:django_domain_events_outboxevent_delete", args=(noted.pk,))

    assert superuser_client.get(EVENTS).status_code == 200
    assert superuser_client.get(event_page(noted.pk)).status_code == 200
    with override_settings(DOMAIN_EVENTS={"ADMIN_ALLOW_DELETE": True}):
        assert superuser_client.post(delete, {"post": "yes"}).status_code == 302
    assert not OutboxEvent.objects.filter(pk=noted.pk).exists()


def test_the_deliveries_list_wraps_names_at_their_dots_and_shortens_errors(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {"n": 1})
    long_error = "ConnectionError: " + "the ERP refused the connection; " * 4
    Delivery.objects.filter(receiver="unit_admin.flaky").update(last_error=long_error)

    page = superuser_client.get(DELIVERIES).content.decode()

    assert "unit_<wbr>admin.<wbr>flaky" in page
    assert '<details class="dde-error">' in page
    # The whole error is one click away, in the disclosure.
    assert f"</summary>{long_error}</details>" in page


def test_the_lists_show_times_to_the_second(
    superuser_client: Client, switches: Switches, noted: OutboxEvent
) -> None:
    page = superuser_client.get(EVENTS).content.decode()

    assert timezone.localtime(noted.occurred_at).strftime("%Y-%m-%d %H:%M:%S") in page
