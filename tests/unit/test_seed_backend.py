"""The in-house backend of seeds 000 and 001, completed: its ``event_handlers`` modules are
discovered, each backend instance keeps its own subscriptions, the seed module's names exist, a
worker that never initialised the backend says what to do, and payloads JSON cannot carry say
how to migrate them."""

from __future__ import annotations

import datetime as dt
import enum
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction

from django_domain_events import PayloadError, backend
from django_domain_events.compat import backend as backend_module
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.runner import owed_delivery, run_delivery
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.testapp.models import Order

transactional = pytest.mark.django_db(transaction=True)

SEED_APP = "tests.unit.autodiscover_apps.ad_seed"
PAID = "billing.invoice_paid"

SEED_NAMES = (
    # seeds/001: "Attributes", "Classes", "Functions", in the seed's order.
    "logger",
    "EventHandler",
    "_event_backend",
    "_pending_handlers",
    "_is_initialized",
    "EventBackendType",
    "EventPublisher",
    "EventSubscriber",
    "EventBackend",
    "CeleryEventBackend",
    "MemoryEventBackend",
    "get_event_backend",
    "init_event_backend",
    "publish_event",
    "subscribe_to_event",
    "init_domain_events",
    "register_event_handlers",
    "_import_event_handlers",
)


@pytest.fixture(autouse=True)
def no_backend(receiver_registry: Registry) -> Iterator[None]:
    """No backend and no pending subscriptions during the test; the process's come back."""
    saved_backend = backend_module._event_backend
    saved_initialized = backend_module._is_initialized
    saved_pending = backend_module.pending_handlers()
    backend.reset_event_backend()
    try:
        yield
    finally:
        backend.reset_event_backend()
        backend_module._event_backend = saved_backend
        backend_module._is_initialized = saved_initialized
        backend_module._pending_handlers.update(saved_pending)


@pytest.fixture
def fresh_seed_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, f"{SEED_APP}.event_handlers", raising=False)


def installed(*app_names: str) -> Any:
    class Installed:
        def __enter__(self) -> None:
            apps.set_installed_apps(app_names)

        def __exit__(self, *exc: object) -> None:
            apps.unset_installed_apps()

    return Installed()


# The seed's own API, name by name ------------------------------------------------------------


def test_every_name_of_the_seed_module_exists() -> None:
    missing = [name for name in SEED_NAMES if not hasattr(backend, name)]

    assert missing == []
    assert backend.logger.name == "django_domain_events"


@transactional
def test_the_seed_api_in_the_order_the_seed_lists_it(receiver_registry: Registry) -> None:
    # seeds/001: subscriptions made before init are pending, init_domain_events() attaches them.
    got: list[dict[str, Any]] = []
    assert backend._is_initialized is False
    with pytest.raises(RuntimeError, match="init_event_backend"):
        backend.get_event_backend()

    @backend.subscribe_to_event(PAID)
    def handler(payload: dict[str, Any]) -> None:
        got.append(payload)

    assert backend._pending_handlers == {PAID: [handler]}
    event_backend = backend.init_event_backend(backend.EventBackendType.MEMORY)
    backend.init_domain_events()

    assert backend._is_initialized is True
    assert backend._event_backend is event_backend is backend.get_event_backend()
    assert isinstance(event_backend, backend.MemoryEventBackend)
    assert isinstance(event_backend, backend.EventBackend)
    assert event_backend.handlers == {PAID: [handler]}
    with transaction.atomic():
        backend.publish_event(PAID, {"invoice_id": 7})
    assert got == [{"invoice_id": 7}]


def test_is_initialized_goes_back_to_false_when_the_backend_is_reset() -> None:
    backend.init_event_backend(backend.EventBackendType.MEMORY)
    assert backend._is_initialized is True

    backend.reset_event_backend()

    assert backend._is_initialized is False


# event_handlers modules ----------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_seed_app")
@transactional
def test_event_handlers_modules_are_discovered_like_handlers_and_receivers() -> None:
    with installed("django_domain_events", SEED_APP):
        from tests.unit.autodiscover_apps.ad_seed import event_handlers

        assert backend_module.pending_handlers() == {PAID: [event_handlers.send_receipt]}
        backend.init_event_backend(backend.EventBackendType.MEMORY)
        event_handlers.receipts.clear()
        backend.publish_event(PAID, {"invoice_id": 7})

    assert event_handlers.receipts == [7]


@pytest.mark.usefixtures("fresh_seed_app")
def test_import_event_handlers_imports_the_event_handlers_modules() -> None:
    with installed(SEED_APP):
        backend._import_event_handlers()

    assert [handler.__name__ for handler in backend_module.pending_handlers()[PAID]] == [
        "send_receipt"
    ]


# Each instance keeps its own subscriptions ---------------------------------------------------


@transactional
def test_two_memory_backends_each_reach_only_their_own_handlers() -> None:
    first, second = backend.MemoryEventBackend(), backend.MemoryEventBackend()
    got: list[tuple[str, Any]] = []
    first.subscribe(PAID, lambda payload: got.append(("first", payload["invoice_id"])))
    second.subscribe(PAID, lambda payload: got.append(("second", payload["invoice_id"])))

    first.publish_event(PAID, {"invoice_id": 1})
    second.publish_event(PAID, {"invoice_id": 2})

    assert got == [("first", 1), ("second", 2)]
    assert first.namespace != second.namespace
    # Both are outbox events with deliveries, each to its own backend's receiver only.
    assert OutboxEvent.objects.count() == 2
    assert sorted(Delivery.objects.values_list("receiver", flat=True)) == sorted(
        [
            backend.subscription_name(PAID, first.handlers[PAID][0], first.namespace),
            backend.subscription_name(PAID, second.handlers[PAID][0], second.namespace),
        ]
    )


@transactional
def test_a_standalone_backend_is_not_reached_by_the_project_backend_or_publish() -> None:
    from django_domain_events import publish

    project = backend.init_event_backend(backend.EventBackendType.MEMORY)
    own = backend.MemoryEventBackend()
    got: list[str] = []
    project.subscribe(PAID, lambda payload: got.append("project"))
    own.subscribe(PAID, lambda payload: got.append("own"))

    backend.publish_event(PAID, {"invoice_id": 1})
    publish(PAID, {"invoice_id": 2})
    own.publish_event(PAID, {"invoice_id": 3})

    assert got == ["project", "project", "own"]


# A worker that never initialised the backend -------------------------------------------------


@pytest.mark.django_db  # never commits: the delivery waits, as for a worker
def test_a_worker_without_init_event_backend_says_to_call_it_and_retries(
    receiver_registry: Registry,
) -> None:
    def send_receipt(payload: dict[str, Any]) -> None: ...

    # The web process initialised the backend and published.
    backend.init_event_backend(backend.EventBackendType.MEMORY)
    backend.subscribe_to_event(PAID)(send_receipt)
    backend.publish_event(PAID, {"invoice_id": 7})
    # The worker imported the handler module but never called init_event_backend().
    backend.reset_event_backend()
    with receiver_registry.isolated():
        backend.subscribe_to_event(PAID)(send_receipt)
        row = Delivery.objects.get()
        run_delivery(owed_delivery(row, "default"))

    row.refresh_from_db()
    assert row.state == DeliveryState.FAILED
    assert row.next_attempt_at is not None
    assert "never called init_event_backend()" in row.last_error
    assert "AppConfig.ready()" in row.last_error


# Payloads JSON cannot carry ------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (Decimal("9.99"), "pass str(value), or declare a DomainEvent class with a Decimal field"),
        (uuid.UUID(int=1), "pass str(value), or declare a DomainEvent class with a UUID field"),
        (
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            "pass str(value), or declare a DomainEvent class with a datetime field",
        ),
        (Colour.RED, "pass value.value, or declare a DomainEvent class with a Colour field"),
        ({1, 2}, "pass sorted(value) (a list)"),
        (b"raw", "pass value.decode() or a base64 string"),
        (Order(pk=3, total=Decimal(1)), "pass the primary key (value.pk)"),
    ],
)
def test_payload_values_json_cannot_carry_say_how_to_migrate(value: Any, hint: str) -> None:
    backend.init_event_backend(backend.EventBackendType.MEMORY)

    with pytest.raises(PayloadError, match=r"payload\['amount'\]: JSON value expected") as raised:
        backend.publish_event(PAID, {"amount": value})

    assert hint in str(raised.value)
    assert not OutboxEvent.objects.exists()
