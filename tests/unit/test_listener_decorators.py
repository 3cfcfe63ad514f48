"""``@on(event)`` and ``@once(event)``: the listener functions as decorators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from django_domain_events import NamedEvent, on, once, publish
from django_domain_events.publishing import listeners
from tests.testapp.events import Pinged

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def remove_decorated_listeners() -> Iterator[None]:
    yield
    # A decorated function has no Listener handle; take whatever the test subscribed.
    for subscribed in list(listeners._by_type.values()):
        for listener in subscribed:
            listener.remove()


@transactional
def test_once_as_a_decorator_hears_the_next_event_only_and_returns_the_function() -> None:
    heard: list[int] = []

    @once(Pinged)
    def first_ping(event: Pinged) -> None:
        heard.append(event.n)

    with transaction.atomic():
        publish(Pinged(n=1))
        assert heard == []
    publish(Pinged(n=2))

    assert heard == [1]
    assert not listeners.has_listeners()
    first_ping(Pinged(n=3))  # still the plain function
    assert heard == [1, 3]


@transactional
def test_on_as_a_decorator_hears_every_event_until_removed() -> None:
    heard: list[object] = []

    @on("unit_listener_decorators.named")
    async def every(event: NamedEvent) -> None:
        heard.append(event.payload)

    publish("unit_listener_decorators.named", {"n": 1})
    publish("unit_listener_decorators.named", {"n": 2})

    assert heard == [{"n": 1}, {"n": 2}]
    assert listeners.has_listeners()


def test_decorator_forms_check_the_event_at_once() -> None:
    with pytest.raises(TypeError, match=r"once\(\) takes a DomainEvent subclass"):
        once(42)  # type: ignore[call-overload]


def test_a_listener_refuses_a_wildcard_and_points_to_receivers() -> None:
    with pytest.raises(
        ValueError, match=r"wildcards are for durable receivers, @receiver\('a\.\*'\)"
    ):
        on("a.*", print)
