"""The outbox dashboard: hourly figures, what is owed, failing receivers, drawn as SVG."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_domain_events import publish
from django_domain_events.admin.dashboard import outbox_stats
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

from .conftest import PINGED, Switches, login, staff_with

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = reverse("admin:django_domain_events_outboxevent_dashboard")


def test_the_figures_count_the_last_24_hours_by_hour(switches: Switches) -> None:
    publish(PINGED, {})
    publish(PINGED, {})
    old = publish(PINGED, {})
    two_days_ago = timezone.now() - dt.timedelta(days=2)
    OutboxEvent.objects.filter(pk=old).update(occurred_at=two_days_ago)
    Delivery.objects.filter(event_id=old).update(last_attempt_at=two_days_ago)

    stats = outbox_stats("default")

    assert len(stats.hours) == 24
    assert stats.published[-1] == 2
    assert sum(stats.published) == 2
    assert (sum(stats.delivered), sum(stats.failed), sum(stats.dead)) == (2, 2, 2)
    assert [(r.name, r.failed, r.dead) for r in stats.failing_receivers] == [
        ("unit_admin.flaky", 2, 0),
        ("unit_admin.fragile", 0, 2),
    ]


def test_owed_counts_what_a_relay_would_dispatch_and_the_longest_wait(
    switches: Switches,
) -> None:
    publish(PINGED, {})
    publish(PINGED, {})
    now = timezone.now()
    # Both failed deliveries' retries fell due an hour ago; one delivery was never dispatched
    # since it was written two hours ago; the dead ones are not owed.
    Delivery.objects.filter(state=DeliveryState.FAILED).update(
        next_attempt_at=now - dt.timedelta(hours=1)
    )
    missed = Delivery.objects.filter(state=DeliveryState.DELIVERED).first()
    assert missed is not None
    Delivery.objects.filter(pk=missed.pk).update(
        state=DeliveryState.PENDING, created_at=now - dt.timedelta(hours=2)
    )

    stats = outbox_stats("default")

    assert stats.owed == 3
    assert not stats.owed_is_estimate
    assert stats.oldest_owed_age is not None
    assert dt.timedelta(minutes=119) <= stats.oldest_owed_age <= dt.timedelta(minutes=121)


def test_the_page_draws_both_charts_with_a_few_queries(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})

    with CaptureQueriesContext(connection) as queries:
        page = superuser_client.get(DASHBOARD)

    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('<figure class="dde-chart">') == 2
    assert 'class="dde-fill-published"' in html
    assert 'class="dde-fill-dead"' in html
    assert "unit_admin.fragile" in html
    deliveries = reverse("admin:django_domain_events_delivery_changelist")
    assert f'href="{deliveries}?receiver=unit_admin.fragile&amp;state__exact=dead"' in html
    # No script is needed to see it, and nothing is fetched from elsewhere.
    assert '<script src="http' not in html
    # A fixed number whatever the rows: the session, charts, and per kind of owed delivery
    # (pending, failed, lost, due scheduled) a count (with the planner's estimate first on
    # PostgreSQL) and the oldest one.
    assert len(queries) <= 15


def test_the_dashboard_needs_the_view_permission(switches: Switches) -> None:
    nobody = login(staff_with())
    viewer = login(staff_with("view_outboxevent", username="viewer"))

    assert nobody.get(DASHBOARD).status_code == 403
    assert viewer.get(DASHBOARD).status_code == 200


def test_the_failed_and_dead_counts_link_to_their_filtered_lists(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})

    html = superuser_client.get(DASHBOARD).content.decode()

    deliveries = reverse("admin:django_domain_events_delivery_changelist")
    assert f'id="dde-failed"><a href="{deliveries}?state__exact=failed">1</a>' in html
    assert f'id="dde-dead"><a href="{deliveries}?state__exact=dead">1</a>' in html
