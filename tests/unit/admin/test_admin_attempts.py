"""A delivery's attempt history on its admin page: every failed attempt, newest first, escaped,
its traceback folded away; seen by whoever may view the delivery; never editable."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from django_domain_events import publish
from django_domain_events.delivery.runner import owed_delivery, run_delivery
from django_domain_events.models import Delivery

from .conftest import HOSTILE, PINGED, Switches

pytestmark = pytest.mark.django_db(transaction=True)


def delivery_page(pk: object) -> str:
    return reverse("admin:django_domain_events_delivery_change", args=(pk,))


def failed_twice() -> Delivery:
    publish(PINGED, {})
    delivery = Delivery.objects.get(receiver="unit_admin.flaky")
    with override_settings(DOMAIN_EVENTS={"RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0}):
        run_delivery(owed_delivery(Delivery.objects.get(pk=delivery.pk), "default"))
    return Delivery.objects.get(pk=delivery.pk)


def test_the_page_lists_each_failed_attempt_newest_first(
    superuser_client: Client, switches: Switches
) -> None:
    delivery = failed_twice()
    assert delivery.attempts == 2

    page = superuser_client.get(delivery_page(delivery.pk)).content.decode()

    assert "Failed attempts (newest first)" in page
    assert [int(n) for n in re.findall(r"#(\d+)<br><span class=\"dde-badge", page)] == [2, 1]
    assert HOSTILE not in page
    assert page.count("ValueError: &lt;script&gt;") >= 2
    # The delivery's last traceback and one per attempt, each folded away.
    assert page.count('<details class="dde-traceback">') == 3


def test_a_viewer_of_deliveries_sees_the_history_and_cannot_change_it(
    viewer_client: Client, switches: Switches
) -> None:
    delivery = failed_twice()

    page = viewer_client.get(delivery_page(delivery.pk)).content.decode()

    assert "Failed attempts (newest first)" in page
    history = page.split("Failed attempts (newest first)", 1)[1].split("</fieldset>")[0]
    assert re.findall(r'<(?:input|textarea|select)(?![^>]*type="hidden")', history) == []
    assert 'name="_save"' not in page


def test_a_delivery_that_never_failed_shows_no_history(
    superuser_client: Client, switches: Switches
) -> None:
    publish(PINGED, {})
    delivery = Delivery.objects.get(receiver="unit_admin.ok")

    page = superuser_client.get(delivery_page(delivery.pk)).content.decode()

    assert 'class="dde-badge dde-state-failed">failed</span>' not in page
