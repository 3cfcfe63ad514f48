"""The event backend API of ``app.core.events.backend``, kept working on top of the outbox.

Code written for that backend switches its imports to ``django_domain_events.backend`` and keeps
its calls. Underneath, ``publish_event(name, payload)`` is ``publish(name, payload)``: written
to the outbox in the caller's transaction and dispatched after commit. Each
``@subscribe_to_event(name)`` handler becomes a receiver of the named event, whose deliveries use
the backend's dispatcher: ``"sync"`` for ``EventBackendType.MEMORY``, ``"celery"`` for
``EventBackendType.CELERY``. See the migration guide in the documentation.
"""

from __future__ import annotations

import abc
import enum
import importlib
import inspect
import itertools
import logging
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar, Protocol

from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.receivers import make_receiver
from django_domain_events.declaration.registry import DEFAULT_NAMESPACE, Receiver, registry

logger = logging.getLogger("django_domain_events")

EventHandler = Callable[[dict[str, Any]], Any]
"""A handler: called with the event's payload dict; may be ``async def``."""


class EventBackendType(enum.Enum):
    """The kinds of backend ``init_event_backend()`` can build."""

    MEMORY = enum.auto()
    """Handlers run in the publishing process after commit (the ``"sync"`` dispatcher)."""
    CELERY = enum.auto()
    """Handlers run in Celery workers (the ``"celery"`` dispatcher)."""


class EventPublisher(Protocol):
    """Something that publishes named events."""

    def publish_event(self, event_name: str, payload: dict[str, Any]) -> None:
        """Publish the event ``event_name`` with ``payload`` to its subscribers."""


class EventSubscriber(Protocol):
    """Something that subscribes handlers to named events."""

    def subscribe(self, event_name: str, handler: EventHandler) -> None:
        """Call ``handler`` with the payload of every ``event_name`` event."""


_instances = itertools.count(1)


class EventBackend(abc.ABC, EventPublisher, EventSubscriber):
    """Base of the backends: publishes through the outbox and subscribes handlers as receivers
    whose deliveries use ``dispatcher``.

    Each instance keeps its own subscriptions: its publishes reach only its handlers. The
    backend ``init_event_backend()`` builds is the project's: its subscriptions are receivers
    of the ``"default"`` namespace, the one ``publish()`` delivers to. Any other instance's are
    receivers of a namespace of its own (``namespace``).
    """

    dispatcher: ClassVar[str | None] = None
    """The dispatcher of the receivers this backend's subscriptions become (None: the
    project's ``DOMAIN_EVENTS["DISPATCHER"]``)."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[EventHandler]] = {}
        """The handlers subscribed through this backend, by event name."""
        self.namespace: str = f"event_backend_{next(_instances)}"
        """The namespace of its subscriptions' receivers: ``"default"`` for the backend of
        ``init_event_backend()``, one of its own for an instance built directly."""

    def publish_event(self, event_name: str, payload: dict[str, Any]) -> None:
        """Publish the named event through the outbox: in the caller's transaction, dispatched
        after commit, to this backend's handlers. ``payload`` must hold plain JSON values
        (``PayloadError`` otherwise)."""
        from django_domain_events.declaration.namespaces import Namespace
        from django_domain_events.publishing.emitter import Emitter

        if self.namespace == DEFAULT_NAMESPACE:
            Emitter().publish(event_name, payload)
        else:
            Emitter(Namespace(self.namespace)).publish(event_name, payload)

    def subscribe(self, event_name: str, handler: EventHandler) -> None:
        """Register ``handler`` as a receiver of ``event_name`` on this backend's dispatcher."""
        registry.register(_subscription(event_name, handler, self.dispatcher, self.namespace))
        self.handlers.setdefault(event_name, []).append(handler)


class MemoryEventBackend(EventBackend):
    """Handlers run in the publishing process, right after the transaction commits (or at
    once outside a transaction), through the ``"sync"`` dispatcher."""

    dispatcher = "sync"


class CeleryEventBackend(EventBackend):
    """Handlers run in Celery workers, through the ``"celery"`` dispatcher.

    ``celery_app`` becomes Celery's default app for every thread, the app the dispatcher
    sends its tasks with unless ``DOMAIN_EVENTS["CELERY_APP"]`` names another.
    """

    dispatcher = "celery"

    def __init__(self, celery_app: Any) -> None:
        from celery import Celery

        if not isinstance(celery_app, Celery):
            raise TypeError(
                f"CeleryEventBackend(celery_app): expected the project's Celery app, got "
                f"{celery_app!r}."
            )
        super().__init__()
        self.celery_app = celery_app
        """The Celery application given to ``init_event_backend()``."""
        # The dispatcher sends with Celery's current app, which in a thread that did not
        # create an app is the default one.
        celery_app.set_default()


_BACKEND_CLASSES: dict[EventBackendType, type[EventBackend]] = {
    EventBackendType.MEMORY: MemoryEventBackend,
    EventBackendType.CELERY: CeleryEventBackend,
}

_event_backend: EventBackend | None = None
_pending_handlers: dict[str, list[EventHandler]] = {}
_is_initialized = False
"""Whether a backend is current and the subscriptions made so far are attached to it."""


def _payload_of(event: DomainEvent | NamedEvent) -> dict[str, Any]:
    if isinstance(event, NamedEvent):
        return event.payload
    # A typed event subscribed to by its event type: its fields as the JSON the outbox stores.
    from django_domain_events.declaration.codec import decode_json, encode_event

    payload: dict[str, Any] = decode_json(encode_event(event, max_bytes=2**62))
    return payload


def subscription_name(
    event_name: str, handler: EventHandler, namespace: str = DEFAULT_NAMESPACE
) -> str:
    """The stable receiver name of ``handler`` subscribed to ``event_name``:
    ``"module.qualname@event_name"``, so one handler can subscribe to several events (prefixed
    with ``"namespace:"`` for a backend built outside ``init_event_backend()``)."""
    # A callable object has no name of its own: its class's name is stable, where its repr
    # (with an address) would differ on every start.
    module = getattr(handler, "__module__", None) or type(handler).__module__
    qualname = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    name = f"{module}.{qualname}@{event_name}"
    return name if namespace == DEFAULT_NAMESPACE else f"{namespace}:{name}"


def _subscription(
    event_name: str, handler: EventHandler, dispatcher: str | None, namespace: str
) -> Receiver:
    if not callable(handler):
        raise TypeError(f"subscribe_to_event({event_name!r}): {handler!r} is not callable.")
    # The receiver adapts the event to what the handler expects: its payload dict.
    if inspect.iscoroutinefunction(handler):

        async def deliver_async(event: DomainEvent | NamedEvent) -> Any:
            return await handler(_payload_of(event))

        deliver: Callable[..., Any] = deliver_async
    else:

        def deliver_sync(event: DomainEvent | NamedEvent) -> Any:
            return handler(_payload_of(event))

        deliver = deliver_sync
    # Error messages and the admin point at the handler, not at this adapter.
    deliver.__module__ = getattr(handler, "__module__", deliver.__module__)
    deliver.__qualname__ = getattr(handler, "__qualname__", deliver.__qualname__)
    deliver.__name__ = getattr(handler, "__name__", deliver.__name__)
    deliver.__doc__ = getattr(handler, "__doc__", None)
    return make_receiver(
        event_name,
        deliver,
        dispatcher=dispatcher,
        name=subscription_name(event_name, handler, namespace),
        namespace=namespace,
    )


def get_event_backend() -> EventBackend:
    """The backend ``init_event_backend()`` built.

    Raises ``RuntimeError`` if none was initialised yet.
    """
    if _event_backend is None:
        raise RuntimeError(
            "No event backend is initialised. Call "
            "init_event_backend(EventBackendType.MEMORY) (or EventBackendType.CELERY with "
            "celery_app=...) from django_domain_events.backend at start-up, in an "
            "AppConfig.ready() for instance, before publishing with publish_event(). "
            "django_domain_events.publish() needs no backend."
        )
    return _event_backend


def init_event_backend(backend_type: EventBackendType, **kwargs: Any) -> EventBackend:
    """Build the backend of ``backend_type`` (``kwargs`` go to its constructor: ``celery_app``
    for ``CELERY``), make it current, and attach the handlers subscribed so far.

    Calling it again replaces the backend; every handler subscribed through the previous one
    moves to the new one's dispatcher. Raises ``ValueError`` for an unsupported type.
    """
    global _event_backend
    backend_class = _BACKEND_CLASSES.get(backend_type)
    if backend_class is None:
        raise ValueError(
            f"Unsupported event backend type {backend_type!r}: use "
            f"{', '.join(f'EventBackendType.{member.name}' for member in EventBackendType)}."
        )
    backend = backend_class(**kwargs)
    # The project's backend: its handlers are receivers of what publish() publishes too.
    backend.namespace = DEFAULT_NAMESPACE
    previous = _event_backend
    _event_backend = backend
    if previous is not None:
        for event_name, handlers in previous.handlers.items():
            for handler in handlers:
                backend.subscribe(event_name, handler)
    _attach_pending(backend)
    return backend


def _attach_pending(backend: EventBackend) -> None:
    global _is_initialized
    pending = dict(_pending_handlers)
    _pending_handlers.clear()
    for event_name, handlers in pending.items():
        for handler in handlers:
            backend.subscribe(event_name, handler)
    _is_initialized = True


def publish_event(event_name: str, payload: dict[str, Any]) -> None:
    """Publish a named event through the current backend, that is through the outbox.

    Raises ``RuntimeError`` before ``init_event_backend()``, ``PayloadError`` for a payload that
    is not plain JSON values.
    """
    get_event_backend().publish_event(event_name, payload)


def subscribe_to_event(event_name: str) -> Callable[[EventHandler], EventHandler]:
    """Decorator: call the function with the payload dict of every ``event_name`` event.

    Before ``init_event_backend()`` the subscription is kept pending, and attached when the
    backend is initialised. The function is returned unchanged.
    """

    def decorate(handler: EventHandler) -> EventHandler:
        if not callable(handler):
            raise TypeError(f"subscribe_to_event({event_name!r}): {handler!r} is not callable.")
        if _event_backend is None:
            _pending_handlers.setdefault(event_name, []).append(handler)
        else:
            _event_backend.subscribe(event_name, handler)
        return handler

    if not isinstance(event_name, str) or not event_name:
        raise ValueError(f"subscribe_to_event({event_name!r}): give a non-empty event name.")
    return decorate


def pending_handlers() -> dict[str, list[EventHandler]]:
    """The subscriptions waiting for ``init_event_backend()``, by event name (a copy)."""
    return {name: list(handlers) for name, handlers in _pending_handlers.items()}


def init_domain_events() -> None:
    """Attach the pending subscriptions to the current backend, if there is one.

    ``AppConfig.ready()`` of ``django_domain_events`` calls it after importing every installed
    app's ``handlers`` and ``receivers`` modules; calling it again is harmless. Subscriptions
    still pending at start-up are reported by system check ``django_domain_events.E013``.
    """
    if _event_backend is not None:
        _attach_pending(_event_backend)


def register_event_handlers(*modules: ModuleType | str) -> None:
    """Deprecated: import the given modules (objects or dotted names) so their subscriptions
    register, then ``init_domain_events()``.

    Each installed app's ``handlers`` and ``receivers`` modules are now imported at start-up;
    move the subscriptions there and drop the call.
    """
    warnings.warn(
        "register_event_handlers() is deprecated: django_domain_events imports each installed "
        "app's 'handlers' and 'receivers' modules at start-up (autodiscovery). Move the "
        "@subscribe_to_event handlers into such a module and remove this call.",
        DeprecationWarning,
        stacklevel=2,
    )
    for module in modules:
        if isinstance(module, str):
            importlib.import_module(module)
        elif not isinstance(module, ModuleType):
            raise TypeError(
                f"register_event_handlers() takes modules or dotted module names, got {module!r}."
            )
    init_domain_events()


def reset_event_backend() -> None:
    """Forget the backend and the pending subscriptions (for tests). Receivers already
    registered stay registered; use ``registry.isolated()`` around the test for those."""
    global _event_backend, _is_initialized
    _event_backend = None
    _is_initialized = False
    _pending_handlers.clear()


def _import_event_handlers() -> None:
    """Import every installed app's handler modules (``handlers``, ``receivers``,
    ``event_handlers``), as ``AppConfig.ready()`` does at start-up."""
    from django.utils.module_loading import autodiscover_modules

    from django_domain_events.apps import RECEIVER_MODULES

    autodiscover_modules(*RECEIVER_MODULES, register_to=registry)


def unregistered_subscription(receiver_name: str) -> str | None:
    """Why ``receiver_name``, a delivery's receiver not registered in this process, is a
    subscription still waiting for ``init_event_backend()``, with what to do; None if it is
    not one."""
    if _event_backend is not None:
        return None
    for event_name, handlers in _pending_handlers.items():
        for handler in handlers:
            if subscription_name(event_name, handler) == receiver_name:
                return (
                    f"Receiver {receiver_name!r} is a @subscribe_to_event handler, but this "
                    f"process never called init_event_backend(), so its subscription is still "
                    f"pending and it cannot run here. Call init_event_backend(...) from an "
                    f"AppConfig.ready() of your project, which every process runs (web "
                    f"servers, Celery workers, relay_events): the delivery is retried."
                )
    return None


__all__ = [
    "CeleryEventBackend",
    "EventBackend",
    "EventBackendType",
    "EventHandler",
    "EventPublisher",
    "EventSubscriber",
    "MemoryEventBackend",
    "get_event_backend",
    "init_domain_events",
    "init_event_backend",
    "logger",
    "pending_handlers",
    "publish_event",
    "register_event_handlers",
    "reset_event_backend",
    "subscribe_to_event",
    "subscription_name",
    "unregistered_subscription",
]
