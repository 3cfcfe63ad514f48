"""on() and once(): runtime listeners, called in-process after commit, outside the outbox."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from django_domain_events import (
    Envelope,
    Listener,
    NamedEvent,
    on,
    once,
    publish,
    publish_many,
    receiver,
)
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, OutboxEvent
from django_domain_events.publishing.listeners import has_listeners
from tests.testapp.events import Pinged

transactional = pytest.mark.django_db(transaction=True)


NAMED = "unit_listeners.named"


class Boom(Exception):
    pass


@pytest.fixture(autouse=True)
def no_leftover_listeners() -> Iterator[None]:
    yield
    assert not has_listeners(), "a test left a listener subscribed"


@transactional
def test_on_calls_the_listener_after_commit_with_the_event_and_envelope() -> None:
    seen: list[tuple[int, Envelope]] = []

    with on(Pinged, lambda event, envelope: seen.append((event.n, envelope))):
        with transaction.atomic():
            event_id = publish(Pinged(n=1))
            assert seen == []
        publish(Pinged(n=2))

    assert [n for n, _ in seen] == [1, 2]
    assert seen[0][1].event_id == event_id
    assert seen[0][1].event_type == "testapp.Pinged"


@transactional
def test_a_rolled_back_event_reaches_no_listener() -> None:
    seen: list[int] = []

    with on(Pinged, lambda event: seen.append(event.n)):
        with contextlib.suppress(Boom), transaction.atomic():
            publish(Pinged(n=1))
            raise Boom
        with transaction.atomic():
            with contextlib.suppress(Boom), transaction.atomic():
                publish(Pinged(n=2))
                raise Boom
            publish(Pinged(n=3))

    assert seen == [3]


@transactional
def test_listeners_are_not_durable_no_delivery_row_is_written() -> None:
    seen: list[int] = []

    with on(Pinged, lambda event: seen.append(event.n)):
        publish(Pinged(n=1))

    assert seen == [1]
    assert OutboxEvent.objects.count() == 1
    assert not Delivery.objects.exists()


@transactional
def test_once_is_called_for_the_next_event_only() -> None:
    seen: list[int] = []
    listener = once(Pinged, lambda event: seen.append(event.n))
    active_before = listener.active

    publish_many([Pinged(n=1), Pinged(n=2)])
    publish(Pinged(n=3))

    assert seen == [1]
    assert (active_before, listener.active) == (True, False)
    assert listener.remove() is False


@transactional
def test_remove_unsubscribes_and_reports_whether_it_did() -> None:
    seen: list[int] = []
    listener = on(Pinged, lambda event: seen.append(event.n))
    publish(Pinged(n=1))

    assert listener.remove() is True
    assert listener.remove() is False
    publish(Pinged(n=2))

    assert seen == [1]
    assert isinstance(listener, Listener)
    assert listener.event_type == Pinged.event_type


@transactional
def test_named_events_are_listened_to_by_type_string_and_others_are_ignored() -> None:
    seen: list[Any] = []

    with on(NAMED, seen.append), on("unit_listeners.other", seen.append):
        publish(NAMED, {"x": 1})
        publish(Pinged(n=1))

    assert seen == [NamedEvent(NAMED, {"x": 1})]


@transactional
def test_async_listeners_are_awaited() -> None:
    seen: list[int] = []

    async def listen(event: Pinged) -> None:
        await sync_to_async(seen.append)(event.n)

    with on(Pinged, listen):
        publish(Pinged(n=4))

    assert seen == [4]


@transactional
def test_a_raising_listener_is_logged_and_breaks_nothing(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[int] = []
    seen: list[int] = []
    receiver(Pinged, name="unit.listeners.receiver")(lambda event: received.append(event.n))

    def broken(event: Pinged) -> None:
        raise Boom("listener bug")

    with (
        on(Pinged, broken),
        on(Pinged, lambda event: seen.append(event.n)),
        caplog.at_level(logging.ERROR, logger="django_domain_events"),
    ):
        publish(Pinged(n=1))

    assert seen == [1]
    assert received == [1]
    [record] = [r for r in caplog.records if r.message.startswith("Listener ")]
    assert "testapp.Pinged" in record.message
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Boom)


def test_bad_arguments_raise_at_once() -> None:
    with pytest.raises(TypeError, match=r"on\(\) takes a DomainEvent subclass"):
        on(42, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"once\(\) takes a DomainEvent subclass"):
        once("", print)
    with pytest.raises(TypeError, match="is not callable"):
        on(Pinged, None)  # type: ignore[arg-type]
