"""Runtime listeners: in-process callbacks for the events this process commits.

``on(OrderPlaced, func)`` calls ``func`` for every ``OrderPlaced`` this process publishes, once
its transaction has committed; ``once()`` for the next one only. Both return a ``Listener``
handle whose ``remove()`` unsubscribes it; without ``func`` they are decorators
(``@once(OrderPlaced)``) that return the function unchanged. They suit scripts, tests and
live updates of a user interface. They are **not durable** and not part of the outbox: no
delivery row, no retry, not called for events other processes publish, and lost if the process
dies before the call. Work that must happen belongs in a ``@receiver``.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

from asgiref.sync import async_to_sync

from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.receivers import event_type_of

logger = logging.getLogger("django_domain_events")

F = TypeVar("F", bound=Callable[..., Any])

# The default of ``func``: left out, on() and once() are decorators; given as None, an error.
_DECORATE: Any = object()


@dataclass(frozen=True, eq=False)
class Listener:
    """A function listening to one event type at runtime; ``remove()`` unsubscribes it.

    Also a context manager that removes the listener when the block ends::

        with on(OrderPlaced, progress.advance):
            import_orders(rows)
    """

    event_type: str
    func: Callable[..., Any]
    once: bool = False
    """Removed before its first call."""
    takes_envelope: bool = False
    is_async: bool = False

    @property
    def active(self) -> bool:
        """Whether the listener is still subscribed."""
        return self in _by_type.get(self.event_type, ())

    def remove(self) -> bool:
        """Unsubscribe; return whether it was still subscribed. Calling it again is harmless."""
        return _remove(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()


# Event type -> its listeners. Replaced, never mutated, under the lock, so the commit path reads
# it without locking; publishing checks that it is empty before doing anything else.
_by_type: dict[str, tuple[Listener, ...]] = {}
_lock = threading.Lock()


def _check_event(event: type[DomainEvent] | str, *, once: bool) -> None:
    if not (isinstance(event, str) and event) and not (
        isinstance(event, type) and issubclass(event, DomainEvent)
    ):
        raise TypeError(
            f"{'once' if once else 'on'}() takes a DomainEvent subclass or a non-empty event "
            f"type string, got {event!r}."
        )
    if isinstance(event, str) and "*" in event:
        raise ValueError(
            f"{'once' if once else 'on'}({event!r}): a listener listens to one event type; "
            f"wildcards are for durable receivers, @receiver({event!r})."
        )


def _add(event: type[DomainEvent] | str, func: Callable[..., Any], *, once: bool) -> Listener:
    global _by_type
    _check_event(event, once=once)
    if not callable(func):
        raise TypeError(f"{'once' if once else 'on'}(): {func!r} is not callable.")
    try:
        takes_envelope = "envelope" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        takes_envelope = False
    listener = Listener(
        event_type=event_type_of(event),
        func=func,
        once=once,
        takes_envelope=takes_envelope,
        is_async=inspect.iscoroutinefunction(func),
    )
    with _lock:
        current = _by_type.get(listener.event_type, ())
        _by_type = {**_by_type, listener.event_type: (*current, listener)}
    return listener


def _remove(listener: Listener) -> bool:
    global _by_type
    with _lock:
        current = _by_type.get(listener.event_type, ())
        if listener not in current:
            return False
        kept = tuple(other for other in current if other is not listener)
        updated = {**_by_type, listener.event_type: kept}
        if not kept:
            del updated[listener.event_type]
        _by_type = updated
        return True


@overload
def on(event: type[DomainEvent] | str, func: Callable[..., Any]) -> Listener: ...


@overload
def on(event: type[DomainEvent] | str) -> Callable[[F], F]: ...


def on(
    event: type[DomainEvent] | str, func: Callable[..., Any] = _DECORATE
) -> Listener | Callable[[F], F]:
    """Call ``func(event)`` for each ``event`` (class or event type) this process publishes,
    after its transaction commits, until the returned listener is removed.

    ``func`` may be ``async def``, and gets the ``Envelope`` too if it has a parameter named
    ``envelope``. An exception it raises is logged and goes no further. Without ``func``,
    ``@on(event)`` decorates the function to subscribe and returns it unchanged.
    """
    if func is _DECORATE:
        return _decorator(event, once=False)
    return _add(event, func, once=False)


@overload
def once(event: type[DomainEvent] | str, func: Callable[..., Any]) -> Listener: ...


@overload
def once(event: type[DomainEvent] | str) -> Callable[[F], F]: ...


def once(
    event: type[DomainEvent] | str, func: Callable[..., Any] = _DECORATE
) -> Listener | Callable[[F], F]:
    """Like ``on()``, for the next such event only: the listener removes itself first.
    Without ``func``, ``@once(event)`` is a decorator, as with ``on()``."""
    if func is _DECORATE:
        return _decorator(event, once=True)
    return _add(event, func, once=True)


def _decorator(event: type[DomainEvent] | str, *, once: bool) -> Callable[[F], F]:
    _check_event(event, once=once)

    def decorate(func: F) -> F:
        _add(event, func, once=once)
        return func

    return decorate


def has_listeners() -> bool:
    """Whether any runtime listener is subscribed (the commit path skips them otherwise)."""
    return bool(_by_type)


def notify(event: DomainEvent | NamedEvent, envelope: Envelope) -> None:
    """Call the listeners of ``envelope.event_type``; called after the event's commit."""
    for listener in _by_type.get(envelope.event_type, ()):
        if listener.once and not _remove(listener):
            continue  # another thread, or a recursive publish, took it first
        kwargs = {"envelope": envelope} if listener.takes_envelope else {}
        try:
            if listener.is_async:
                async_to_sync(listener.func)(event, **kwargs)
            else:
                listener.func(event, **kwargs)
        except Exception:
            logger.exception(
                "Listener %r of %s raised for event %s",
                listener.func,
                envelope.event_type,
                envelope.event_id,
            )
