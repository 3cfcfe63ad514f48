"""A dead delivery blocks its ordering key, with real Celery workers: the deliveries behind it
wait and never run while the other keys flow, ``events_status`` names the key and exits 1, and
a person's retry, through the ``retry_deliveries`` command or the admin's retry action, lets
the line go on in publish order."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from django_domain_events import publish_many
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState
from tests.brokers import Broker
from tests.processes import CeleryWorker, wait_until

from .conftest import manage, report_on
from .lines import runs, stepped
from .receivers import ORDERED, UNORDERED

pytestmark = [pytest.mark.server_db, pytest.mark.services, pytest.mark.django_db(transaction=True)]

BY_COMMAND, BY_ADMIN = "by-command", "by-admin"
FREE = ("free-a", "free-b")
PER_KEY = 6
DEAD_AT = 1
"""The event of each blocked key whose receiver gives up."""

DELIVERIES = reverse("admin:django_domain_events_delivery_changelist")


def line(key: str) -> list[tuple[str, int]]:
    """The ordered receiver's deliveries of ``key``: (state, attempts), in sequence order."""
    rows = Delivery.objects.filter(receiver=ORDERED, ordering_key=key).order_by("ordering_seq")
    return list(rows.values_list("state", "attempts"))


def blocked_line() -> list[DeliveryState]:
    """The states of a blocked key's line: delivered up to the dead one, waiting after it."""
    return (
        [DeliveryState.DELIVERED] * DEAD_AT
        + [DeliveryState.DEAD]
        + [DeliveryState.WAITING] * (PER_KEY - DEAD_AT - 1)
    )


def states(key: str) -> list[str]:
    return [state for state, _ in line(key)]


def everything_but_the_blocked_lines_settled() -> bool:
    if Delivery.objects.filter(state=DeliveryState.DEAD).count() < 2:
        return False
    free = Delivery.objects.filter(event__ordering_key__in=FREE) | Delivery.objects.filter(
        receiver=UNORDERED
    )
    return not free.exclude(state=DeliveryState.DELIVERED).exists()


def line_delivered(key: str) -> Callable[[], bool]:
    return lambda: states(key) == [DeliveryState.DELIVERED] * PER_KEY


class HiddenInputs(HTMLParser):
    """The hidden fields of a page's forms, as a browser would send them back."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields.append((str(found["name"]), found.get("value") or ""))


def hidden_inputs(html: str) -> list[tuple[str, str]]:
    """The (name, value) of each hidden input of ``html``."""
    parser = HiddenInputs()
    parser.feed(html)
    return parser.fields


def retry_in_the_admin(delivery: Delivery) -> None:
    """Select ``delivery`` in the admin's list of deliveries, choose "Retry selected
    deliveries", and confirm, as a person does in a browser (CSRF checks on)."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    listing = browser.get(DELIVERIES, {"state__exact": DeliveryState.DEAD})
    assert listing.status_code == 200
    assert str(delivery.pk) in listing.content.decode()
    token = dict(hidden_inputs(listing.content.decode()))["csrfmiddlewaretoken"]

    confirmation = browser.post(
        DELIVERIES,
        {
            "csrfmiddlewaretoken": token,
            "action": "retry_selected_deliveries",
            "select_across": "0",
            "index": "0",
            "_selected_action": [str(delivery.pk)],
        },
    )
    assert confirmation.status_code == 200, confirmation.content.decode()[:2000]
    assert confirmation.context["retryable_count"] == 1
    fields: dict[str, list[str]] = {}
    for name, value in hidden_inputs(confirmation.content.decode()):
        fields.setdefault(name, []).append(value)
    assert fields["confirmed"] == ["yes"]

    done = browser.post(DELIVERIES, fields)

    assert done.status_code == 302, done.content.decode()[:2000]


def test_a_dead_delivery_blocks_its_key_until_a_person_retries_it(
    broker: Broker,
    queue: str,
    celery_app: Celery,
    start_workers: Callable[[int, Broker], list[CeleryWorker]],
    stepped_receivers: Registry,
    tmp_path: Path,
) -> None:
    workers = start_workers(2, broker)
    give_up = tmp_path / "give-up"
    give_up.touch()
    for n in range(PER_KEY):
        with transaction.atomic():
            publish_many(
                stepped(key, n, **({"give_up_while": str(give_up)} if n == DEAD_AT else {}))
                if key in (BY_COMMAND, BY_ADMIN)
                else stepped(key, n)
                for key in (BY_COMMAND, *FREE, BY_ADMIN)
            )

    wait_until(
        everything_but_the_blocked_lines_settled,
        "the unblocked deliveries",
        timeout=120,
        interval=0.25,
        report=report_on(workers),
    )

    # Behind each dead delivery, the rest of its line waits and has never run, while the
    # other keys and the unordered receiver have had every event.
    assert states(BY_COMMAND) == states(BY_ADMIN) == blocked_line()
    assert [attempts for _, attempts in line(BY_COMMAND)[DEAD_AT + 1 :]] == [0] * (
        PER_KEY - DEAD_AT - 1
    )
    found = runs(ORDERED)
    assert found[BY_COMMAND] == found[BY_ADMIN] == list(range(DEAD_AT))
    assert all(found[key] == list(range(PER_KEY)) for key in FREE)
    unordered = Delivery.objects.filter(receiver=UNORDERED, state=DeliveryState.DELIVERED)
    assert unordered.count() == 4 * PER_KEY
    # The relay's safety net does not release them either.
    Relay(grace=0).run_pass()
    assert states(BY_COMMAND) == states(BY_ADMIN) == blocked_line()

    status = manage("events_status", broker_url=broker.url, queue=queue)
    assert status.returncode == 1, status.stdout + status.stderr
    assert "Blocked ordering keys: 2." in status.stdout
    assert f"  {ORDERED} / {BY_COMMAND}: dead 1, since " in status.stdout
    assert f"  {ORDERED} / {BY_ADMIN}: dead 1, since " in status.stdout
    assert "2 ordering keys blocked by a dead delivery" in status.stderr

    give_up.unlink()
    dead = {row.ordering_key: row for row in Delivery.objects.filter(state=DeliveryState.DEAD)}
    retried = manage(
        "retry_deliveries", "--id", str(dead[BY_COMMAND].pk), broker_url=broker.url, queue=queue
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "Retried 1 dead deliveries" in retried.stdout

    wait_until(
        line_delivered(BY_COMMAND),
        f"the line of {BY_COMMAND}",
        timeout=120,
        interval=0.25,
        report=report_on(workers),
    )
    assert runs(ORDERED)[BY_COMMAND] == list(range(PER_KEY))
    assert states(BY_ADMIN) == blocked_line()  # retrying one line leaves the other blocked
    status = manage("events_status", broker_url=broker.url, queue=queue)
    assert status.returncode == 1
    assert "Blocked ordering keys: 1." in status.stdout
    assert f"  {ORDERED} / {BY_ADMIN}: dead 1" in status.stdout

    retry_in_the_admin(dead[BY_ADMIN])

    wait_until(
        line_delivered(BY_ADMIN),
        f"the line of {BY_ADMIN}",
        timeout=120,
        interval=0.25,
        report=report_on(workers),
    )
    assert runs(ORDERED)[BY_ADMIN] == list(range(PER_KEY))
    assert not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists()
    status = manage("events_status", broker_url=broker.url, queue=queue)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Healthy." in status.stdout
