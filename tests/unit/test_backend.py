"""django_domain_events.compat.backend: the in-house backend's API, working on top of the outbox."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from celery import Celery
from celery import _state as celery_state
from django.apps import apps
from django.db import transaction

from django_domain_events import DomainEvent, PayloadError, publish
from django_domain_events.checks import check_backend_subscriptions
from django_domain_events.compat import backend as backend_module
from django_domain_events.compat.backend import (
    CeleryEventBackend,
    EventBackend,
    EventBackendType,
    EventPublisher,
    EventSubscriber,
    MemoryEventBackend,
    get_event_backend,
    init_domain_events,
    init_event_backend,
    pending_handlers,
    publish_event,
    register_event_handlers,
    reset_event_backend,
    subscribe_to_event,
)
from django_domain_events.declaration.registry import Registry, registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

transactional = pytest.mark.django_db(transaction=True)

PING = "unit_backend.ping"
PONG = "unit_backend.pong"
HERE = "tests.unit.test_backend"


@dataclass(frozen=True)
class Typed(DomainEvent):
    event_type = "unit_backend.typed"

    amount: Decimal


@pytest.fixture(autouse=True)
def no_backend(receiver_registry: Registry) -> Iterator[None]:
    """Each test starts without a backend or pending subscriptions, in an empty registry, and
    the process's backend state (and Celery's default app) come back afterwards."""
    saved_backend = backend_module._event_backend
    saved_pending = pending_handlers()
    saved_celery_app = celery_state.default_app
    reset_event_backend()
    try:
        yield
    finally:
        reset_event_backend()
        backend_module._event_backend = saved_backend
        backend_module._pending_handlers.update(saved_pending)
        celery_state.set_default_app(saved_celery_app)


def a_celery_app() -> Celery:
    return Celery("unit_backend", set_as_current=False)


# Before init ----------------------------------------------------------------------------------


def test_get_event_backend_before_init_raises_runtime_error_saying_what_to_call() -> None:
    with pytest.raises(RuntimeError, match=r"No event backend is initialised\. Call init_event"):
        get_event_backend()


@transactional
def test_publish_event_before_init_raises_runtime_error_and_writes_nothing() -> None:
    with pytest.raises(RuntimeError, match="init_event_backend"):
        publish_event(PING, {"n": 1})

    assert not OutboxEvent.objects.exists()


def test_init_event_backend_refuses_an_unsupported_type() -> None:
    with pytest.raises(ValueError, match=r"Unsupported event backend type 'memory'"):
        init_event_backend("memory")  # type: ignore[arg-type]

    with pytest.raises(RuntimeError):
        get_event_backend()


# The memory backend: the sync dispatcher ------------------------------------------------------


def test_init_returns_the_backend_get_event_backend_gives_back() -> None:
    backend = init_event_backend(EventBackendType.MEMORY)

    assert isinstance(backend, MemoryEventBackend)
    assert isinstance(backend, EventBackend)
    assert get_event_backend() is backend


@transactional
def test_publish_event_writes_in_the_transaction_and_handlers_get_the_payload_after_commit(
    receiver_registry: Registry,
) -> None:
    init_event_backend(EventBackendType.MEMORY)
    got: list[dict[str, Any]] = []

    @subscribe_to_event(PING)
    def on_ping(payload: dict[str, Any]) -> None:
        got.append(payload)

    with transaction.atomic():
        publish_event(PING, {"n": 1, "tags": ["a"]})
        assert OutboxEvent.objects.get().event_type == PING
        assert got == []

    assert got == [{"n": 1, "tags": ["a"]}]
    delivery = Delivery.objects.get()
    assert delivery.receiver == f"{HERE}.{on_ping.__qualname__}@{PING}"
    assert (delivery.dispatcher, delivery.state) == ("sync", DeliveryState.DELIVERED)


@transactional
def test_a_rolled_back_publish_event_reaches_no_handler() -> None:
    init_event_backend(EventBackendType.MEMORY)
    got: list[dict[str, Any]] = []
    subscribe_to_event(PING)(got.append)

    def publish_then_fail() -> None:
        with transaction.atomic():
            publish_event(PING, {"n": 1})
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        publish_then_fail()

    assert got == []
    assert not OutboxEvent.objects.exists()


@transactional
def test_async_handlers_get_the_payload() -> None:
    init_event_backend(EventBackendType.MEMORY)
    got: list[dict[str, Any]] = []

    @subscribe_to_event(PING)
    async def on_ping(payload: dict[str, Any]) -> None:
        await sync_to_async(got.append)(payload)

    publish_event(PING, {"n": 2})

    assert got == [{"n": 2}]


@transactional
def test_one_handler_subscribed_to_two_events_is_two_receivers_with_stable_names() -> None:
    init_event_backend(EventBackendType.MEMORY)
    got: list[tuple[str, int]] = []

    @subscribe_to_event(PING)
    @subscribe_to_event(PONG)
    def on_either(payload: dict[str, Any]) -> None:
        got.append((payload["kind"], payload["n"]))

    publish_event(PING, {"kind": "ping", "n": 1})
    publish_event(PONG, {"kind": "pong", "n": 2})

    assert got == [("ping", 1), ("pong", 2)]
    assert sorted(Delivery.objects.values_list("receiver", flat=True)) == [
        f"{HERE}.{on_either.__qualname__}@{PING}",
        f"{HERE}.{on_either.__qualname__}@{PONG}",
    ]


@transactional
def test_a_handler_of_a_typed_event_type_gets_its_fields_as_json() -> None:
    init_event_backend(EventBackendType.MEMORY)
    got: list[dict[str, Any]] = []
    subscribe_to_event(Typed.event_type)(got.append)

    publish(Typed(amount=Decimal("9.90")))

    assert got == [{"amount": "9.90"}]


@transactional
def test_publish_event_refuses_payloads_that_are_not_plain_json() -> None:
    init_event_backend(EventBackendType.MEMORY)

    with pytest.raises(PayloadError, match=r"payload\['amount'\]: JSON value expected"):
        publish_event(PING, {"amount": Decimal("1.50")})

    assert not OutboxEvent.objects.exists()


def test_backends_satisfy_the_publisher_and_subscriber_protocols() -> None:
    def use(publisher: EventPublisher, subscriber: EventSubscriber) -> None: ...

    backend = MemoryEventBackend()
    use(backend, backend)
    assert callable(backend.publish_event)
    assert callable(backend.subscribe)


# Pending subscriptions ------------------------------------------------------------------------


@transactional
def test_handlers_subscribed_before_init_are_pending_then_attached_at_init(
    receiver_registry: Registry,
) -> None:
    got: list[dict[str, Any]] = []

    @subscribe_to_event(PING)
    def early(payload: dict[str, Any]) -> None:
        got.append(payload)

    assert pending_handlers() == {PING: [early]}
    assert list(receiver_registry.all()) == []
    publish(PING, {"n": 0})  # no backend yet: no receiver, no delivery
    assert not Delivery.objects.exists()

    init_event_backend(EventBackendType.MEMORY)

    assert pending_handlers() == {}
    assert get_event_backend().handlers == {PING: [early]}
    publish_event(PING, {"n": 1})
    assert got == [{"n": 1}]


def test_pending_subscriptions_are_a_system_check_error_until_a_backend_exists() -> None:
    subscribe_to_event(PING)(print)

    [error] = check_backend_subscriptions()
    assert error.id == "django_domain_events.E013"
    assert "builtins.print" in error.msg
    assert error.hint is not None
    assert "init_event_backend" in error.hint

    init_event_backend(EventBackendType.MEMORY)

    assert check_backend_subscriptions() == []


def test_init_domain_events_attaches_pending_subscriptions_when_there_is_a_backend() -> None:
    init_domain_events()  # no backend: nothing to attach to, and no error
    backend = MemoryEventBackend()
    backend_module._event_backend = backend
    subscribe_to_event(PING)(print)  # attached at once: there is a backend
    backend_module._pending_handlers[PONG] = [repr]

    init_domain_events()
    init_domain_events()

    assert pending_handlers() == {}
    assert backend.handlers == {PING: [print], PONG: [repr]}
    # Built directly, not by init_event_backend(): its receivers are in a namespace of its own.
    assert registry.get(f"{backend.namespace}:builtins.repr@{PONG}") is not None


def test_app_ready_calls_init_domain_events_after_autodiscovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(backend_module, "init_domain_events", lambda: calls.append(True))

    apps.get_app_config("django_domain_events").ready()

    assert calls == [True]


# The Celery backend: the celery dispatcher ----------------------------------------------------


@pytest.mark.django_db  # never commits: nothing is sent to a broker
def test_celery_backend_routes_its_subscriptions_to_the_celery_dispatcher() -> None:
    app = a_celery_app()
    backend = init_event_backend(EventBackendType.CELERY, celery_app=app)
    subscribe_to_event(PING)(print)

    publish_event(PING, {"n": 1})

    assert isinstance(backend, CeleryEventBackend)
    assert backend.celery_app is app
    assert celery_state.default_app is app
    delivery = Delivery.objects.get()
    assert (delivery.receiver, delivery.dispatcher) == (f"builtins.print@{PING}", "celery")


def test_celery_backend_needs_a_celery_app() -> None:
    with pytest.raises(TypeError, match="expected the project's Celery app"):
        init_event_backend(EventBackendType.CELERY, celery_app="proj.celery.app")

    with pytest.raises(TypeError):
        init_event_backend(EventBackendType.CELERY)


def test_initialising_again_moves_every_subscription_to_the_new_backend() -> None:
    subscribe_to_event(PING)(print)
    init_event_backend(EventBackendType.MEMORY)
    subscribe_to_event(PONG)(repr)
    assert {r.name: r.dispatcher for r in registry.all()} == {
        f"builtins.print@{PING}": "sync",
        f"builtins.repr@{PONG}": "sync",
    }

    backend = init_event_backend(EventBackendType.CELERY, celery_app=a_celery_app())

    assert backend.handlers == {PING: [print], PONG: [repr]}
    assert {r.name: r.dispatcher for r in registry.all()} == {
        f"builtins.print@{PING}": "celery",
        f"builtins.repr@{PONG}": "celery",
    }


# register_event_handlers() --------------------------------------------------------------------


@transactional
def test_register_event_handlers_is_deprecated_but_still_imports_and_attaches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "tests.unit.legacy_handlers", raising=False)
    init_event_backend(EventBackendType.MEMORY)

    with pytest.deprecated_call(match=r"register_event_handlers\(\) is deprecated.*autodiscovery"):
        register_event_handlers("tests.unit.legacy_handlers")

    from tests.unit import legacy_handlers

    legacy_handlers.received.clear()
    publish_event("unit_backend.legacy_ping", {"n": 3})
    assert legacy_handlers.received == [{"n": 3}]
    # Module objects, as the in-house backend took them, are accepted too.
    with pytest.deprecated_call():
        register_event_handlers(legacy_handlers)


def test_register_event_handlers_refuses_what_is_not_a_module() -> None:
    with pytest.deprecated_call(), pytest.raises(TypeError, match="modules or dotted module"):
        register_event_handlers(42)  # type: ignore[arg-type]


def test_subscribe_to_event_refuses_an_empty_name_and_non_callables() -> None:
    with pytest.raises(ValueError, match="non-empty event name"):
        subscribe_to_event("")
    with pytest.raises(TypeError, match="is not callable"):
        subscribe_to_event(PING)(42)  # type: ignore[arg-type]
