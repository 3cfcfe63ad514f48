"""Class-based receivers: @receiver_class groups @handles methods, each a receiver of its own."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps

from django_domain_events import Envelope, handles, publish, receiver_class
from django_domain_events.checks import check_backend_subscriptions, check_receivers
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState
from tests.testapp.events import Pinged, Ponged

transactional = pytest.mark.django_db(transaction=True)

HERE = "tests.unit.test_class_receivers"
CLASSES_APP = "tests.unit.autodiscover_apps.ad_classes"


@transactional
def test_each_handles_method_is_a_receiver_named_module_class_method(
    receiver_registry: Registry,
) -> None:
    seen: list[tuple[str, int]] = []

    @receiver_class
    class Ledger:
        @handles(Pinged)
        def on_pinged(self, event: Pinged) -> None:
            seen.append(("pinged", event.n))

        @handles(Ponged)
        def on_ponged(self, event: Ponged) -> None:
            seen.append(("ponged", event.n))

        def helper(self) -> None:
            """Not a receiver: no @handles."""

    publish(Pinged(n=1))
    publish(Ponged(n=2))

    prefix = f"{HERE}.{Ledger.__qualname__}"
    assert sorted(r.name for r in receiver_registry.all()) == [
        f"{prefix}.on_pinged",
        f"{prefix}.on_ponged",
    ]
    assert receiver_registry.receivers_for(Pinged.event_type)[0].name == f"{prefix}.on_pinged"
    assert seen == [("pinged", 1), ("ponged", 2)]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@transactional
def test_by_default_each_delivery_gets_a_fresh_instance(receiver_registry: Registry) -> None:
    instances: list[object] = []

    @receiver_class
    class Counter:
        def __init__(self) -> None:
            instances.append(self)

        @handles(Pinged)
        def on_pinged(self, event: Pinged) -> None:
            assert instances[-1] is self

    publish(Pinged(n=1))
    publish(Pinged(n=2))

    assert len(instances) == 2
    assert instances[0] is not instances[1]


@transactional
def test_scope_process_shares_one_instance_made_at_the_first_delivery(
    receiver_registry: Registry,
) -> None:
    instances: list[object] = []

    @receiver_class(scope="process")
    class Client:
        def __init__(self) -> None:
            instances.append(self)
            self.calls = 0

        @handles(Pinged)
        def on_pinged(self, event: Pinged) -> None:
            self.calls += 1

        @handles(Ponged)
        def on_ponged(self, event: Ponged) -> None:
            self.calls += 1

    assert instances == []
    publish(Pinged(n=1))
    publish(Ponged(n=2))
    publish(Pinged(n=3))

    [client] = instances
    assert client.calls == 3  # type: ignore[attr-defined]


@transactional
def test_methods_may_take_the_envelope_and_be_async(receiver_registry: Registry) -> None:
    seen: list[Any] = []

    @receiver_class
    class Mixed:
        @handles(Pinged)
        def with_envelope(self, event: Pinged, envelope: Envelope) -> None:
            seen.append((event.n, envelope.receiver))

        @handles(Ponged)
        async def later(self, event: Ponged) -> None:
            await sync_to_async(seen.append)(("async", event.n))

    publish(Pinged(n=1))
    publish(Ponged(n=2))

    assert seen == [(1, f"{HERE}.{Mixed.__qualname__}.with_envelope"), ("async", 2)]
    registered = receiver_registry.get(f"{HERE}.{Mixed.__qualname__}.later")
    assert registered is not None
    assert registered.is_async


def test_handles_takes_the_options_of_receiver(receiver_registry: Registry) -> None:
    @receiver_class
    class Tuned:
        @handles(Pinged, dispatcher="deferred", queue="slow", max_attempts=2, name="tuned.open")
        def on_pinged(self, event: Pinged) -> None: ...

    [registered] = receiver_registry.all()
    assert registered.name == "tuned.open"
    assert (registered.dispatcher, registered.queue, registered.max_attempts) == (
        "deferred",
        "slow",
        2,
    )
    assert registered.target is Pinged


def test_subclasses_register_under_their_own_name_and_see_overrides(
    receiver_registry: Registry,
) -> None:
    class Base:
        greeting: ClassVar[str] = "base"

        @handles(Pinged)
        def on_pinged(self, event: Pinged) -> None: ...

    @receiver_class
    class Child(Base):
        greeting = "child"

    assert [r.name for r in receiver_registry.all()] == [f"{HERE}.{Child.__qualname__}.on_pinged"]


def test_mistakes_raise_at_decoration(receiver_registry: Registry) -> None:
    with pytest.raises(TypeError, match="has no method decorated with @handles"):

        @receiver_class
        class Empty:
            def on_pinged(self, event: Pinged) -> None: ...

    with pytest.raises(TypeError, match=r"must be callable without arguments"):

        @receiver_class
        class NeedsArgs:
            def __init__(self, client: object) -> None: ...

            @handles(Pinged)
            def on_pinged(self, event: Pinged) -> None: ...

    with pytest.raises(ValueError, match=r"scope='thread'"):
        receiver_class(scope="thread")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"max_attempts=0"):
        handles(Pinged, max_attempts=0)(lambda self, event: None)
    with pytest.raises(TypeError, match=r"@handles\(\) decorates methods"):
        handles(Pinged)(staticmethod(print))
    assert list(receiver_registry.all()) == []


def test_a_method_that_cannot_take_the_event_is_a_check_error(
    receiver_registry: Registry,
) -> None:
    @receiver_class
    class Wrong:
        @handles(Pinged)
        def on_pinged(self) -> None: ...

    [error] = [e for e in check_receivers() if e.id == "django_domain_events.E009"]
    assert f"{Wrong.__qualname__}.on_pinged" in error.msg


def forgotten_handlers() -> list[object]:
    """E014 errors about classes this test defines (other tests' leftovers aside)."""
    return [
        error.obj
        for error in check_backend_subscriptions()
        if error.id == "django_domain_events.E014" and "Forgotten" in str(error.obj)
    ]


@pytest.mark.usefixtures("receiver_registry")
def test_handles_without_receiver_class_is_a_check_error() -> None:
    class Forgotten:
        @handles(Pinged)
        def on_pinged(self, event: Pinged) -> None: ...

    assert forgotten_handlers() == [f"{HERE}.{Forgotten.__qualname__}.on_pinged"]
    [error] = [e for e in check_backend_subscriptions() if e.obj == forgotten_handlers()[0]]
    assert error.hint == "Decorate the class with @receiver_class."

    # Gone with its class, and never reported for a class that is decorated.
    del Forgotten
    gc.collect()

    @receiver_class
    class Forgotten:  # type: ignore[no-redef]
        @handles(Pinged)
        def on_pinged(self, event: Pinged) -> None: ...

    assert forgotten_handlers() == []


@contextmanager
def installed_apps(*app_names: str) -> Iterator[None]:
    try:
        apps.set_installed_apps(app_names)
        yield
    finally:
        apps.unset_installed_apps()


def test_class_receivers_are_discovered_like_function_receivers(
    receiver_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, f"{CLASSES_APP}.handlers", raising=False)

    with installed_apps("django_domain_events", CLASSES_APP):
        pass

    assert sorted(r.name for r in receiver_registry.all()) == [
        f"{CLASSES_APP}.handlers.Audit.on_created",
        f"{CLASSES_APP}.handlers.Audit.on_deleted",
    ]
