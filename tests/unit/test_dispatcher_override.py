"""use_dispatcher(): the dispatcher of every delivery published inside a block, per context."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction

from django_domain_events import (
    DispatcherError,
    apublish,
    publish,
    receiver,
    use_dispatcher,
)
from django_domain_events.declaration.registry import Registry
from django_domain_events.dispatchers.override import dispatcher_override
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.testing import drain
from tests.testapp.events import Pinged

transactional = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


@pytest.fixture
def rang(receiver_registry: Registry) -> list[int]:
    """What two receivers got: one on the default dispatcher (sync in the test settings), one
    that names "sync" itself."""
    got: list[int] = []
    receiver(Pinged, name="unit.override.default")(lambda event: got.append(event.n))
    receiver(Pinged, name="unit.override.own", dispatcher="sync")(lambda event: got.append(event.n))
    return got


def dispatchers_by_receiver() -> dict[str, str]:
    return dict(Delivery.objects.values_list("receiver", "dispatcher"))


@transactional
def test_the_block_overrides_the_setting_and_each_receivers_own_dispatcher(
    rang: list[int],
) -> None:
    with use_dispatcher("deferred"):
        publish(Pinged(n=1))

    assert rang == []
    assert dispatchers_by_receiver() == {
        "unit.override.default": "deferred",
        "unit.override.own": "deferred",
    }
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}

    assert drain().delivered == 2
    assert rang == [1, 1]


@transactional
def test_the_dispatcher_is_the_one_in_force_at_publish_time_not_at_commit(
    rang: list[int],
) -> None:
    with transaction.atomic():
        with use_dispatcher("deferred"):
            publish(Pinged(n=1))
        publish(Pinged(n=2))

    assert rang == [2, 2]
    assert Delivery.objects.filter(dispatcher="deferred").count() == 2


@transactional
def test_blocks_nest_and_the_previous_choice_comes_back_even_after_an_error(
    rang: list[int],
) -> None:
    seen: list[str | None] = []

    def fail_inside() -> None:
        with use_dispatcher("deferred"):
            seen.append(dispatcher_override())
            raise Boom

    with use_dispatcher("sync"):
        with pytest.raises(Boom):
            fail_inside()
        assert seen == ["deferred"]
        assert dispatcher_override() == "sync"
    assert dispatcher_override() is None


@transactional
def test_apublish_inside_the_block_keeps_the_override(rang: list[int]) -> None:
    with use_dispatcher("deferred"):
        async_to_sync(apublish)(Pinged(n=1))

    assert set(dispatchers_by_receiver().values()) == {"deferred"}
    assert rang == []


def test_an_unknown_dispatcher_fails_on_entry() -> None:
    with pytest.raises(DispatcherError, match="Unknown dispatcher 'sideways'"):
        use_dispatcher("sideways").__enter__()

    assert dispatcher_override() is None


def test_the_override_belongs_to_the_thread_that_entered_the_block() -> None:
    seen_elsewhere: list[str | None] = []
    inside = threading.Event()
    checked = threading.Event()

    def other_thread() -> None:
        inside.wait(5)
        seen_elsewhere.append(dispatcher_override())
        checked.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with use_dispatcher("deferred"):
        inside.set()
        checked.wait(5)
        assert dispatcher_override() == "deferred"
    thread.join(5)

    assert seen_elsewhere == [None]


def test_concurrent_asyncio_tasks_each_see_their_own_override() -> None:
    async def task(name: str, delay: float) -> str | None:
        with use_dispatcher(name):
            await asyncio.sleep(delay)
            return dispatcher_override()

    async def both() -> list[str | None]:
        return list(await asyncio.gather(task("sync", 0.02), task("deferred", 0.0)))

    assert asyncio.run(both()) == ["sync", "deferred"]
