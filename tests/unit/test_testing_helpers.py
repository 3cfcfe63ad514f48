"""The testing helpers: capture_events(), drain(), the pytest fixtures, and both under Django's
TestCase and TransactionTestCase."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.test import TestCase, TransactionTestCase, override_settings

from django_domain_events import (
    DomainEvent,
    Envelope,
    GiveUp,
    NamedEvent,
    publish,
    publish_many,
    receiver,
)
from django_domain_events.declaration.registry import Registry, registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from django_domain_events.testing import CapturedEvents, DrainResult, capture_events, drain
from tests.testapp.events import OrderPlaced
from tests.testapp.models import Effect

NAMED = "unit_helpers.invoice_paid"
DEFERRED = {"DISPATCHER": "deferred"}


@dataclass(frozen=True)
class Noted(DomainEvent):
    event_type = "unit_helpers.noted"

    text: str
    priority: int = 0


@dataclass(frozen=True)
class FollowedUp(DomainEvent):
    event_type = "unit_helpers.followed_up"

    text: str


class Boom(Exception):
    pass


@pytest.fixture
def published(receiver_registry: Registry) -> CapturedEvents:
    """Two Noted and one named event, captured."""
    with capture_events() as captured:
        publish(Noted(text="a"))
        publish_many([Noted(text="b", priority=2)])
        publish(NAMED, {"invoice_id": 7, "lines": [1, 2]})
    return captured


# capture_events -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_capture_events_records_typed_and_named_events_with_their_envelopes(
    receiver_registry: Registry,
) -> None:
    publish(Noted(text="before"))
    with capture_events() as captured:
        first = publish(Noted(text="a"), correlation_id="req-1")
        second = publish(NAMED, {"invoice_id": 7})
    publish(Noted(text="after"))

    assert captured.events == [Noted(text="a"), NamedEvent(NAMED, {"invoice_id": 7})]
    assert [item.envelope.event_id for item in captured] == [first, second]
    assert [item.event_type for item in captured] == ["unit_helpers.noted", NAMED]
    assert isinstance(captured[0].envelope, Envelope)
    assert captured[0].envelope.correlation_id == "req-1"
    assert captured.of_type(Noted) == [Noted(text="a")]
    assert captured.of_type(NAMED) == [NamedEvent(NAMED, {"invoice_id": 7})]


@pytest.mark.django_db
def test_capture_events_sees_events_as_they_are_published(receiver_registry: Registry) -> None:
    # CapturedEvents: "Events are recorded when publish() returns".
    with capture_events() as captured:
        publish(Noted(text="a"))
        captured.assert_published(Noted, text="a")


@pytest.mark.django_db(transaction=True)
def test_capture_events_records_events_whose_transaction_rolled_back(
    receiver_registry: Registry,
) -> None:
    with capture_events() as captured, contextlib.suppress(Boom), transaction.atomic():
        publish(Noted(text="rolled back"))
        raise Boom

    captured.assert_published(Noted, count=1, text="rolled back")
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_capture_events_records_events_published_by_receivers(
    receiver_registry: Registry,
) -> None:
    @receiver(Noted, name="unit.helpers.follow_up")
    def follow_up(event: Noted) -> None:
        publish(FollowedUp(text=event.text))

    with capture_events() as captured:
        root = publish(Noted(text="x"))

    [followed] = [item for item in captured if item.event_type == FollowedUp.event_type]
    assert followed.event == FollowedUp(text="x")
    assert followed.envelope.causation_id == root


# assert_published / assert_not_published ------------------------------------------------------


@pytest.mark.django_db
def test_assert_published_returns_the_matching_events(published: CapturedEvents) -> None:
    assert published.assert_published(Noted) == [Noted(text="a"), Noted(text="b", priority=2)]
    assert published.assert_published(Noted, text="b") == [Noted(text="b", priority=2)]
    assert published.assert_published(Noted, count=2) == published.of_type(Noted)
    assert published.assert_published(Noted, count=1, priority=0) == [Noted(text="a")]
    assert published.assert_published(NAMED, invoice_id=7, lines=[1, 2]) == [
        NamedEvent(NAMED, {"invoice_id": 7, "lines": [1, 2]})
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda captured: captured.assert_published(FollowedUp),
            "No FollowedUp published. "
            "Published: unit_helpers.noted x2, unit_helpers.invoice_paid x1.",
            id="missing-type",
        ),
        pytest.param(
            lambda captured: captured.assert_published(Noted, text="z", priority=1),
            "No Noted published with text='z', priority=1. "
            "Published: unit_helpers.noted x2, unit_helpers.invoice_paid x1.",
            id="no-field-match",
        ),
        pytest.param(
            lambda captured: captured.assert_published(Noted, count=3),
            "Expected 3 Noted published, found 2. "
            "Published: unit_helpers.noted x2, unit_helpers.invoice_paid x1.",
            id="wrong-count",
        ),
        pytest.param(
            lambda captured: captured.assert_published(NAMED, invoice_id=8),
            f"No {NAMED} published with invoice_id=8.",
            id="named-field",
        ),
        pytest.param(
            lambda captured: captured.assert_published(Noted, missing_field=None),
            "No Noted published with missing_field=None.",
            id="unknown-field-is-not-none",
        ),
        pytest.param(
            lambda captured: captured.assert_not_published(Noted, text="a"),
            "Expected 0 Noted published with text='a', found 1.",
            id="not-published",
        ),
    ],
)
def test_assert_published_failures_say_what_was_published(
    published: CapturedEvents, call: Callable[[CapturedEvents], Any], message: str
) -> None:
    with pytest.raises(AssertionError) as excinfo:
        call(published)

    assert str(excinfo.value).startswith(message)


@pytest.mark.django_db
def test_assert_published_on_nothing_says_so(receiver_registry: Registry) -> None:
    with capture_events() as captured:
        pass

    with pytest.raises(AssertionError, match=r"^No Noted published\. Published: nothing\.$"):
        captured.assert_published(Noted)


@pytest.mark.django_db
def test_assert_not_published_passes_when_nothing_matches(published: CapturedEvents) -> None:
    published.assert_not_published(FollowedUp)
    published.assert_not_published(Noted, text="z")
    published.assert_not_published("unit_helpers.never")


# drain ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(DOMAIN_EVENTS=DEFERRED)
def test_drain_runs_pending_and_failed_deliveries_to_completion(
    receiver_registry: Registry,
) -> None:
    runs: list[tuple[str, int]] = []

    @receiver(Noted, name="unit.helpers.ok")
    def ok(event: Noted, envelope: Envelope) -> None:
        runs.append(("ok", envelope.attempt))

    @receiver(Noted, name="unit.helpers.flaky")
    def flaky(event: Noted, envelope: Envelope) -> None:
        runs.append(("flaky", envelope.attempt))
        if envelope.attempt == 1:
            raise TimeoutError("slow")

    @receiver(Noted, name="unit.helpers.broken", max_attempts=2)
    def broken(event: Noted, envelope: Envelope) -> None:
        runs.append(("broken", envelope.attempt))
        raise ValueError("bug")

    @receiver(Noted, name="unit.helpers.gives_up")
    def gives_up(event: Noted, envelope: Envelope) -> None:
        runs.append(("gives_up", envelope.attempt))
        raise GiveUp("not for us")

    publish(Noted(text="a"))
    assert runs == []

    result = drain()

    assert isinstance(result, DrainResult)
    assert (result.delivered, result.failed, result.dead, result.skipped) == (2, 2, 2, 0)
    assert result.total == 6
    assert sorted(runs) == [
        ("broken", 1),
        ("broken", 2),
        ("flaky", 1),
        ("flaky", 2),
        ("gives_up", 1),
        ("ok", 1),
    ]
    assert dict(Delivery.objects.values_list("receiver", "state")) == {
        "unit.helpers.ok": DeliveryState.DELIVERED,
        "unit.helpers.flaky": DeliveryState.DELIVERED,
        "unit.helpers.broken": DeliveryState.DEAD,
        "unit.helpers.gives_up": DeliveryState.DEAD,
    }
    assert drain().total == 0


@pytest.mark.django_db(transaction=True)
def test_drain_runs_failed_deliveries_without_waiting_for_their_backoff(
    receiver_registry: Registry,
) -> None:
    @receiver(Noted, name="unit.helpers.slow_retry")
    def fails_once(event: Noted, envelope: Envelope) -> None:
        if envelope.attempt == 1:
            raise TimeoutError("slow")

    with override_settings(DOMAIN_EVENTS={"RETRY_BASE_DELAY": 3600, "RETRY_MAX_DELAY": 3600}):
        publish(Noted(text="a"))
    assert Delivery.objects.get().state == DeliveryState.FAILED

    assert drain().delivered == 1
    assert Delivery.objects.get().state == DeliveryState.DELIVERED


@pytest.mark.django_db(transaction=True)
@override_settings(DOMAIN_EVENTS=DEFERRED)
def test_drain_runs_deliveries_of_events_published_by_receivers(
    receiver_registry: Registry,
) -> None:
    followed: list[tuple[FollowedUp, Envelope]] = []

    @receiver(Noted, name="unit.helpers.follow_up")
    def follow_up(event: Noted) -> None:
        publish(FollowedUp(text=event.text))

    @receiver(FollowedUp, name="unit.helpers.followed")
    def on_followed(event: FollowedUp, envelope: Envelope) -> None:
        followed.append((event, envelope))

    root = publish(Noted(text="x"))

    result = drain()

    assert result.delivered == 2
    [(event, envelope)] = followed
    assert event == FollowedUp(text="x")
    assert envelope.causation_id == root
    assert not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists()


@pytest.mark.django_db(transaction=True)
@override_settings(DOMAIN_EVENTS=DEFERRED)
def test_drain_stops_after_max_rounds(receiver_registry: Registry) -> None:
    @receiver(Noted, name="unit.helpers.forever")
    def forever(event: Noted) -> None:
        publish(Noted(text=event.text + "+"))

    publish(Noted(text=""))

    result = drain(max_rounds=3)

    assert result.delivered == 3
    assert Delivery.objects.filter(state=DeliveryState.PENDING).count() == 1


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
@override_settings(DOMAIN_EVENTS=DEFERRED)
def test_drain_runs_the_deliveries_of_one_alias(receiver_registry: Registry) -> None:
    ran: list[Noted] = []
    receiver(Noted, name="unit.helpers.other_alias")(ran.append)

    publish(Noted(text="elsewhere"), using="other")

    assert drain().total == 0
    assert drain(using="other").delivered == 1
    assert ran == [Noted(text="elsewhere")]
    assert Delivery.objects.using("other").get().state == DeliveryState.DELIVERED


# pytest fixtures ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_domain_events_fixture_captures_what_the_test_published(
    domain_events: CapturedEvents, receiver_registry: Registry
) -> None:
    publish(Noted(text="from the test"))

    domain_events.assert_published(Noted, text="from the test")


@pytest.mark.django_db(transaction=True)
@override_settings(DOMAIN_EVENTS=DEFERRED)
def test_drain_events_fixture_runs_owed_deliveries(
    drain_events: Callable[..., DrainResult], receiver_registry: Registry
) -> None:
    ran: list[Noted] = []
    receiver(Noted, name="unit.helpers.fixture_drain")(ran.append)
    publish(Noted(text="a"))

    assert drain_events().delivered == 1
    assert ran == [Noted(text="a")]


PROJECT_RECEIVER = "tests.testapp.handlers.record_order_placed"
FIXTURE_RECEIVER = "unit.helpers.registered_in_a_fixture_test"


@pytest.mark.django_db(transaction=True)
def test_receiver_registry_fixture_is_empty_and_isolated(receiver_registry: Registry) -> None:
    assert receiver_registry is registry
    assert list(receiver_registry.all()) == []
    assert registry.get(PROJECT_RECEIVER) is None

    receiver(OrderPlaced, name=FIXTURE_RECEIVER)(lambda event: None)
    publish(OrderPlaced(order_id=1, total=Decimal("1")))

    assert list(Delivery.objects.values_list("receiver", flat=True)) == [FIXTURE_RECEIVER]
    assert not Effect.objects.exists()


def test_receiver_registry_fixture_restores_the_project_receivers() -> None:
    # Runs after the test above (file order): its registration is gone, the project's is back.
    assert registry.get(FIXTURE_RECEIVER) is None
    assert registry.get(PROJECT_RECEIVER) is not None


# Django's TestCase and TransactionTestCase ----------------------------------------------------


class HelpersInTestCaseTests(TestCase):
    """In ``TestCase`` the test's transaction never commits: ``on_commit`` hooks run only inside
    ``captureOnCommitCallbacks(execute=True)``, and ``drain()`` runs what is owed."""

    def setUp(self) -> None:
        self.enterContext(registry.isolated())
        self.noted: list[Noted] = []
        receiver(Noted, name="unit.helpers.testcase")(self.noted.append)

    def test_captured_on_commit_hooks_dispatch(self) -> None:
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            publish(Noted(text="a"))
            assert self.noted == []

        assert len(callbacks) == 1
        assert self.noted == [Noted(text="a")]
        assert Delivery.objects.get().state == DeliveryState.DELIVERED

    def test_drain_runs_what_no_hook_dispatched(self) -> None:
        publish(Noted(text="b"))
        assert self.noted == []

        result = drain()

        assert (result.delivered, result.total) == (1, 1)
        assert self.noted == [Noted(text="b")]
        assert Delivery.objects.get().state == DeliveryState.DELIVERED

    def test_a_failing_receiver_is_recorded_inside_the_test_transaction(self) -> None:
        @receiver(Noted, name="unit.helpers.testcase_fails")
        def fails(event: Noted) -> None:
            Effect.objects.create(receiver="fails", event_id=OutboxEvent.objects.get().id)
            raise ValueError("inside TestCase")

        with self.captureOnCommitCallbacks(execute=True):
            publish(Noted(text="c"))

        failed = Delivery.objects.get(receiver="unit.helpers.testcase_fails")
        assert failed.state == DeliveryState.FAILED
        assert failed.last_error == "ValueError: inside TestCase"
        assert not Effect.objects.exists()
        assert self.noted == [Noted(text="c")]

    def test_capture_events_under_testcase(self) -> None:
        with capture_events() as captured:
            publish(Noted(text="d"))

        captured.assert_published(Noted, count=1, text="d")


class PublishInSetUpThenCaptureTests(TestCase):
    """A test whose set-up publishes (creating fixtures through code that publishes) and whose
    body then captures the hooks of what it publishes itself."""

    def setUp(self) -> None:
        self.enterContext(registry.isolated())
        self.noted: list[Noted] = []
        receiver(Noted, name="unit.helpers.setup_then_capture")(self.noted.append)
        publish(Noted(text="fixture"))

    def test_events_published_inside_the_capture_block_are_dispatched(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            publish(Noted(text="under test"))

        assert Noted(text="under test") in self.noted


class HelpersInTransactionTestCaseTests(TransactionTestCase):
    """In ``TransactionTestCase`` transactions really commit: receivers run at once."""

    def setUp(self) -> None:
        self.enterContext(registry.isolated())
        self.noted: list[Noted] = []
        receiver(Noted, name="unit.helpers.transaction_testcase")(self.noted.append)

    def test_publish_dispatches_on_commit(self) -> None:
        with capture_events() as captured, transaction.atomic():
            publish(Noted(text="a"))
            assert self.noted == []

        assert self.noted == [Noted(text="a")]
        captured.assert_published(Noted, text="a")
        assert Delivery.objects.get().state == DeliveryState.DELIVERED
        assert drain().total == 0

    def test_drain_with_the_deferred_dispatcher(self) -> None:
        with override_settings(DOMAIN_EVENTS=DEFERRED):
            publish(Noted(text="b"))
        assert self.noted == []

        assert drain().delivered == 1
        assert self.noted == [Noted(text="b")]
