"""Ordering in the admin: waiting deliveries shown as such, an ordered delivery's place in its
line, blocked lines on the dashboard, and the retry and skip actions letting a line go on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.http import urlencode

from django_domain_events import GiveUp, publish, receiver
from django_domain_events.admin import lines
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState

from .conftest import login, staff_with
from .test_admin_actions import messages_of, post_action

pytestmark = pytest.mark.django_db(transaction=True)

STEP = "unit_admin.step"
EVENTS = reverse("admin:django_domain_events_outboxevent_changelist")
DELIVERIES = reverse("admin:django_domain_events_delivery_changelist")
DASHBOARD = reverse("admin:django_domain_events_outboxevent_dashboard")


def delivery_page(pk: object) -> str:
    return reverse("admin:django_domain_events_delivery_change", args=(pk,))


@dataclass
class Line:
    """What the ordered receivers do: they give up on the steps in ``give_up`` and fail (to be
    retried) on those in ``fail``; every successful run is recorded, in order."""

    give_up: set[tuple[str, int]] = field(default_factory=set)
    fail: set[tuple[str, int]] = field(default_factory=set)
    runs: list[tuple[str, str, int]] = field(default_factory=list)


@pytest.fixture
def line(receiver_registry: Registry) -> Line:
    """Receivers of ``unit_admin.step`` in the test's registry: ``unit_admin.ordered``
    (ordered, blocks on a dead delivery), ``unit_admin.skipper`` (ordered, skips dead ones)
    and ``unit_admin.plain`` (not ordered), the first two failing as ``line`` says."""
    state = Line()

    def run(name: str, event: Any) -> None:
        spot = (event.payload["key"], event.payload["n"])
        if spot in state.give_up:
            raise GiveUp(f"step {spot} cannot be done")
        if spot in state.fail:
            raise ValueError(f"step {spot} failed")
        state.runs.append((name, *spot))

    @receiver(STEP, name="unit_admin.ordered", ordered=True)
    def ordered(event: Any) -> None:
        run("unit_admin.ordered", event)

    @receiver(STEP, name="unit_admin.skipper", ordered=True, on_dead="skip")
    def skipper(event: Any) -> None:
        run("unit_admin.skipper", event)

    @receiver(STEP, name="unit_admin.plain")
    def plain(event: Any) -> None:
        pass

    return state


def step(key: str, n: int) -> None:
    publish(STEP, {"key": key, "n": n}, ordering_key=key)


def of(name: str, key: str, n: int) -> Delivery:
    return Delivery.objects.get(receiver=name, event__payload__key=key, event__payload__n=n)


def blocked_line(line: Line, key: str = "a", waiting: int = 2) -> Delivery:
    """A line of ``unit_admin.ordered`` whose first delivery is dead with ``waiting`` behind
    it; returns the dead one."""
    line.give_up.add((key, 1))
    for n in range(1, waiting + 2):
        step(key, n)
    dead = of("unit_admin.ordered", key, 1)
    assert dead.state == DeliveryState.DEAD
    return dead


def ordered_runs(line: Line) -> list[tuple[str, int]]:
    return [(key, n) for name, key, n in line.runs if name == "unit_admin.ordered"]


# The waiting state --------------------------------------------------------------------------


def test_waiting_deliveries_show_as_waiting_in_the_lists_and_their_filters(
    superuser_client: Client, line: Line
) -> None:
    blocked_line(line)

    events = superuser_client.get(EVENTS).content.decode()
    deliveries = superuser_client.get(DELIVERIES).content.decode()
    waiting = superuser_client.get(f"{DELIVERIES}?state__exact=waiting")

    assert '<span class="dde-badge dde-state-waiting">1 waiting</span>' in events
    assert "?delivery_state=waiting" in events
    assert '<span class="dde-badge dde-state-waiting">waiting</span>' in deliveries
    assert "?state__exact=waiting" in deliveries
    assert sorted(row.ordering_seq for row in waiting.context["cl"].result_list) == [2, 3]


def test_the_deliveries_list_shows_each_ordered_deliverys_key_and_number(
    superuser_client: Client, line: Line
) -> None:
    step("order:<7>", 1)

    page = superuser_client.get(DELIVERIES).content.decode()

    assert '<span title="order:&lt;7&gt;">order:&lt;7&gt;</span> #1' in page


# A delivery's place in its line -------------------------------------------------------------


def test_a_waiting_delivery_links_to_the_dead_one_holding_it_up(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    last = of("unit_admin.ordered", "a", 3)

    page = superuser_client.get(delivery_page(last.pk)).content.decode()

    assert (
        f'Waiting behind delivery <a href="{delivery_page(dead.pk)}">{dead.pk.hex[-8:]}</a>' in page
    )
    assert '<span class="dde-badge dde-state-dead">dead</span>, #1)' in page
    assert "2 unsettled deliveries are ahead of it in its line." in page
    assert "That one is dead: retry it, or skip it in its line" in page


def test_a_waiting_delivery_behind_a_failed_one_links_to_it(
    superuser_client: Client, line: Line
) -> None:
    line.fail.add(("a", 1))
    step("a", 1)
    step("a", 2)
    failed, waiting = of("unit_admin.ordered", "a", 1), of("unit_admin.ordered", "a", 2)

    page = superuser_client.get(delivery_page(waiting.pk)).content.decode()

    assert f'<a href="{delivery_page(failed.pk)}">' in page
    assert '<span class="dde-badge dde-state-failed">failed</span>, #1)' in page
    assert "1 unsettled delivery is ahead of it in its line." in page
    assert "That one is dead" not in page


def test_a_dead_delivery_counts_and_links_the_deliveries_waiting_behind_it(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    step("b", 1)  # another key's line: not behind it

    page = superuser_client.get(delivery_page(dead.pk)).content.decode()

    query = urlencode(
        {
            "receiver": "unit_admin.ordered",
            "ordering_key": "a",
            "state__exact": "waiting",
            "ordering_seq__gt": "1",
        }
    )
    link = f"{DELIVERIES}?{query}"
    assert f'<a href="{link.replace("&", "&amp;")}">2 deliveries wait behind it</a>' in page
    assert "it holds up its line until it is retried" in page
    select = f'<a href="{DELIVERIES}?q={dead.pk}">select it in the list to do either</a>'
    assert select in page
    found = superuser_client.get(f"{DELIVERIES}?q={dead.pk}").context["cl"].result_list
    assert [row.pk for row in found] == [dead.pk]
    listed = superuser_client.get(link)
    assert listed.status_code == 200
    assert sorted(
        (row.receiver, row.ordering_key, row.ordering_seq)
        for row in listed.context["cl"].result_list
    ) == [("unit_admin.ordered", "a", 2), ("unit_admin.ordered", "a", 3)]
    # The key the list is narrowed to is shown among its filters.
    assert "By ordering key" in listed.content.decode()


def test_a_failed_delivery_says_the_ones_behind_it_run_once_it_settles(
    superuser_client: Client, line: Line
) -> None:
    line.fail.add(("a", 1))
    step("a", 1)
    step("a", 2)

    page = superuser_client.get(delivery_page(of("unit_admin.ordered", "a", 1).pk))

    assert "1 delivery waits behind it</a>; they run, in order, once it settles." in (
        page.content.decode()
    )


def test_a_dead_delivery_of_a_receiver_that_skips_holds_up_nothing(
    superuser_client: Client, line: Line
) -> None:
    line.give_up.add(("a", 1))
    step("a", 1)
    step("a", 2)

    page = superuser_client.get(delivery_page(of("unit_admin.skipper", "a", 1).pk))

    assert of("unit_admin.skipper", "a", 2).state == DeliveryState.DELIVERED
    assert "Nothing waits behind it; its receiver skips dead deliveries" in page.content.decode()


def test_an_unordered_delivery_has_no_ordering_section(
    superuser_client: Client, line: Line
) -> None:
    step("a", 1)

    plain = superuser_client.get(delivery_page(of("unit_admin.plain", "a", 1).pk))
    ordered = superuser_client.get(delivery_page(of("unit_admin.ordered", "a", 1).pk))

    assert "place in its line" not in plain.content.decode().lower()
    assert "Place in its line" in ordered.content.decode()
    assert "Delivered: nothing waits on it." in ordered.content.decode()


# Blocked lines on the dashboard and in the list -----------------------------------------------


def test_the_dashboard_lists_the_blocked_lines_with_links(
    superuser_client: Client, line: Line
) -> None:
    # Dead for the receiver that skips dead deliveries too, where it blocks nothing.
    dead = blocked_line(line, key="a&b", waiting=2)
    assert of("unit_admin.skipper", "a&b", 1).state == DeliveryState.DEAD

    page = superuser_client.get(DASHBOARD)
    html = page.content.decode()

    stats = page.context["stats"]
    assert (stats.waiting, stats.blocked_keys) == (2, 1)
    [blocked] = stats.blocked
    assert (blocked.receiver, blocked.ordering_key, blocked.dead, blocked.waiting) == (
        "unit_admin.ordered",
        "a&b",
        1,
        2,
    )
    assert blocked.head == dead.pk
    assert '<div class="module dde-blocked" id="dde-blocked">' in html
    assert f'<a href="{delivery_page(dead.pk)}">1</a>' in html
    waiting = (
        f"{DELIVERIES}?receiver=unit_admin.ordered&amp;ordering_key=a%26b&amp;state__exact=waiting"
    )
    assert f'<a href="{waiting}">2</a>' in html
    assert f'<a href="{DELIVERIES}?line=blocking">1</a>' in html


def test_the_dashboard_leaves_the_blocked_lines_out_when_there_are_none(
    superuser_client: Client, line: Line
) -> None:
    step("a", 1)

    html = superuser_client.get(DASHBOARD).content.decode()

    assert 'id="dde-blocked"' not in html
    assert '<span class="dde-card-value" id="dde-blocked-keys">0</span>' in html


def test_the_holding_up_filter_keeps_the_dead_deliveries_that_block_their_line(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    line.give_up.add(("b", 1))
    step("b", 1)  # dead for all three receivers; only ordered's blocks a line
    blocking_b = of("unit_admin.ordered", "b", 1)

    found = superuser_client.get(f"{DELIVERIES}?line=blocking").context["cl"].result_list

    assert sorted(row.pk for row in found) == sorted([dead.pk, blocking_b.pk])


# Retrying and skipping ----------------------------------------------------------------------


def test_retrying_the_dead_delivery_lets_its_line_go_on_in_order(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    line.give_up.clear()
    line.runs.clear()

    page = post_action(superuser_client, DELIVERIES, "retry_selected_deliveries", [dead.pk])
    assert "1 of them has a place in an ordering line" in page.content.decode()
    done = post_action(
        superuser_client, DELIVERIES, "retry_selected_deliveries", [dead.pk], confirmed="yes"
    )

    assert done.status_code == 302
    assert ordered_runs(line) == [("a", 1), ("a", 2), ("a", 3)]
    states = Delivery.objects.filter(receiver="unit_admin.ordered").values_list("state", flat=True)
    assert set(states) == {DeliveryState.DELIVERED}


def test_skip_asks_for_confirmation_and_changes_nothing_until_then(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    waiting = of("unit_admin.ordered", "a", 2)

    page = post_action(
        superuser_client, DELIVERIES, "skip_selected_in_lines", [dead.pk, waiting.pk]
    )

    assert page.status_code == 200
    assert (page.context["skippable_count"], page.context["skipped_count"]) == (1, 1)
    assert "1 dead delivery will be taken out of its ordering line" in page.content.decode()
    dead.refresh_from_db()
    assert dead.ordering_key == "a"
    assert of("unit_admin.ordered", "a", 2).state == DeliveryState.WAITING


def test_skipping_a_dead_delivery_releases_its_line_and_keeps_it_dead(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    other = blocked_line(line, key="b", waiting=0)  # nothing waits behind it
    line.runs.clear()

    done = post_action(
        superuser_client,
        DELIVERIES,
        "skip_selected_in_lines",
        [dead.pk, other.pk],
        confirmed="yes",
    )

    assert done.status_code == 302
    assert ordered_runs(line) == [("a", 2), ("a", 3)]
    dead.refresh_from_db()
    assert (dead.state, dead.ordering_key, dead.last_error) == (
        DeliveryState.DEAD,
        "",
        "GiveUp: step ('a', 1) cannot be done",
    )
    assert messages_of(done) == [
        "2 dead deliveries taken out of their ordering lines; 1 line released: its next "
        "delivery is being dispatched."
    ]
    logged = LogEntry.objects.filter(action_flag=CHANGE)
    assert sorted(entry.object_id for entry in logged) == sorted([str(dead.pk), str(other.pk)])
    # Its page says where it went; the dashboard no longer lists a blocked line.
    page = superuser_client.get(delivery_page(dead.pk)).content.decode()
    assert "Taken out of the line of ordering key a (skipped)" in page
    assert superuser_client.get(DASHBOARD).context["stats"].blocked_keys == 0


def test_a_skipped_delivery_can_still_be_retried_out_of_turn(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)
    post_action(superuser_client, DELIVERIES, "skip_selected_in_lines", [dead.pk], confirmed="yes")
    line.give_up.clear()

    post_action(
        superuser_client, DELIVERIES, "retry_selected_deliveries", [dead.pk], confirmed="yes"
    )

    assert ordered_runs(line)[-1] == ("a", 1)
    dead.refresh_from_db()
    assert dead.state == DeliveryState.DELIVERED


def test_skip_leaves_deliveries_that_are_not_dead_or_not_ordered_alone(
    superuser_client: Client, line: Line
) -> None:
    line.give_up.add(("a", 1))
    line.fail.add(("b", 1))
    step("a", 1)
    step("b", 1)
    step("b", 2)
    unordered_dead = of("unit_admin.plain", "a", 1)
    Delivery.objects.filter(pk=unordered_dead.pk).update(state=DeliveryState.DEAD)
    failed = of("unit_admin.ordered", "b", 1)

    done = post_action(
        superuser_client,
        DELIVERIES,
        "skip_selected_in_lines",
        [unordered_dead.pk, failed.pk],
        confirmed="yes",
    )

    assert messages_of(done) == [
        "0 dead deliveries taken out of their ordering lines; 0 lines released: their next "
        "deliveries are being dispatched."
    ]
    failed.refresh_from_db()
    assert (failed.state, failed.ordering_key) == (DeliveryState.FAILED, "b")
    assert of("unit_admin.ordered", "b", 2).state == DeliveryState.WAITING
    assert not LogEntry.objects.exists()


def test_skip_needs_the_retry_permission(line: Line) -> None:
    dead = blocked_line(line)
    viewer = login(staff_with("view_delivery", "view_outboxevent"))
    retrier = login(
        staff_with("view_delivery", "view_outboxevent", "retry_delivery", username="retrier")
    )

    assert "skip_selected_in_lines" not in viewer.get(DELIVERIES).content.decode()
    refused = post_action(viewer, DELIVERIES, "skip_selected_in_lines", [dead.pk], confirmed="yes")
    dead.refresh_from_db()
    assert refused.status_code == 200  # the list again, with Django's "no action" note
    assert dead.ordering_key == "a"
    assert of("unit_admin.ordered", "a", 2).state == DeliveryState.WAITING

    assert "skip_selected_in_lines" in retrier.get(DELIVERIES).content.decode()
    allowed = post_action(retrier, DELIVERIES, "skip_selected_in_lines", [dead.pk], confirmed="yes")
    assert allowed.status_code == 302
    assert of("unit_admin.ordered", "a", 3).state == DeliveryState.DELIVERED


def test_the_dashboard_takes_no_more_queries_for_more_blocked_lines(
    superuser_client: Client, line: Line
) -> None:
    blocked_line(line, key="a")
    with CaptureQueriesContext(connection) as one:
        superuser_client.get(DASHBOARD)
    for key in ("b", "c", "d"):
        blocked_line(line, key=key)

    with CaptureQueriesContext(connection) as four:
        page = superuser_client.get(DASHBOARD)

    assert page.context["stats"].blocked_keys == 4
    assert len(four) == len(one)


def test_counts_in_a_line_stop_at_the_limit(
    superuser_client: Client, line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lines, "LINE_COUNT_LIMIT", 1)
    dead = blocked_line(line, waiting=3)
    last = of("unit_admin.ordered", "a", 4)

    head = superuser_client.get(delivery_page(dead.pk)).content.decode()
    tail = superuser_client.get(delivery_page(last.pk)).content.decode()

    assert "more than 1 deliveries wait behind it</a>" in head
    assert "more than 1 unsettled deliveries are ahead of it in its line." in tail


# A delivery's own page ----------------------------------------------------------------------
def test_a_waiting_deliverys_page_says_what_it_waits_behind_first_and_has_no_next_attempt(
    superuser_client: Client, line: Line
) -> None:
    blocked_line(line)
    last = of("unit_admin.ordered", "a", 3)

    page = superuser_client.get(delivery_page(last.pk)).content.decode()

    assert page.index("Waiting behind delivery") < page.index("field-receiver")
    assert "field-next_attempt_at" not in page


def test_a_dead_deliverys_page_has_retry_and_skip_buttons_that_ask_first(
    superuser_client: Client, line: Line
) -> None:
    dead = blocked_line(line)

    page = superuser_client.get(delivery_page(dead.pk)).content.decode()

    assert f'action="{DELIVERIES}"' in page
    assert 'value="retry_selected_deliveries"' in page
    assert 'value="skip_selected_in_lines"' in page
    assert f'name="_selected_action" value="{dead.pk}"' in page
    # What the button posts is the list's action, which shows its confirmation page.
    confirmation = superuser_client.post(
        DELIVERIES,
        {"action": "retry_selected_deliveries", "_selected_action": str(dead.pk), "index": "0"},
    )
    assert confirmation.status_code == 200
    assert 'name="confirmed"' in confirmation.content.decode()


def test_a_delivered_or_waiting_deliverys_page_has_no_retry_button(
    superuser_client: Client, line: Line
) -> None:
    blocked_line(line)
    waiting = of("unit_admin.ordered", "a", 2)

    page = superuser_client.get(delivery_page(waiting.pk)).content.decode()

    assert 'value="retry_selected_deliveries"' not in page
