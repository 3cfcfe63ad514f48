"""The ``@receiver`` decorator and the ``Receiver`` value it registers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .events import DomainEvent

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Receiver:
    """One registered receiver: a function and how its deliveries are made.

    ``name`` is stable across deploys and is what delivery rows store; the function is found
    again through the registry by that name, never imported from data.
    """

    name: str
    event_type: str
    func: Callable[..., Any]
    target: type | str
    """The event class or event type string given to ``@receiver``."""
    dispatcher: str | None = None
    queue: str | None = None
    max_attempts: int | None = None
    is_async: bool = False
    takes_envelope: bool = False

    @property
    def origin(self) -> str:
        """Where the function is defined, for error messages."""
        module = getattr(self.func, "__module__", None) or "?"
        qualname = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"{module}.{qualname}"


def default_receiver_name(func: Callable[..., Any]) -> str:
    """``"module.qualname"`` of ``func``: the name a receiver gets unless ``name=`` is given."""
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def event_type_of(target: type | str) -> str:
    """The event type a ``@receiver`` target stands for."""
    if isinstance(target, str):
        return target
    if isinstance(target, type) and issubclass(target, DomainEvent):
        return target.event_type
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', target)}"


def _takes_envelope(func: Callable[..., Any]) -> bool:
    try:
        return "envelope" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def make_receiver(
    target: type | str,
    func: Callable[..., Any],
    *,
    dispatcher: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    name: str | None = None,
) -> Receiver:
    """Build a ``Receiver``, refusing argument values that can never be right."""
    if not isinstance(target, str | type):
        raise TypeError(
            f"@receiver() takes an event class or an event type string, got {target!r}."
        )
    if isinstance(target, str) and not target:
        raise ValueError("@receiver(''): the event type must be a non-empty string.")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise ValueError(f"@receiver(max_attempts={max_attempts!r}): give an integer >= 1.")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"@receiver(name={name!r}): give a non-empty string.")
    return Receiver(
        name=name or default_receiver_name(func),
        event_type=event_type_of(target),
        func=func,
        target=target,
        dispatcher=dispatcher,
        queue=queue,
        max_attempts=max_attempts,
        is_async=inspect.iscoroutinefunction(func),
        takes_envelope=_takes_envelope(func),
    )


def receiver(
    event: type[DomainEvent] | str,
    *,
    dispatcher: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    name: str | None = None,
) -> Callable[[F], F]:
    """Register the decorated function (sync or ``async def``) as a receiver of ``event``.

    ``event`` is a ``DomainEvent`` subclass or a named event type. ``dispatcher`` and
    ``max_attempts`` override the project settings for this receiver; ``queue`` is passed to
    dispatchers that have queues; ``name`` overrides the stable default ``"module.qualname"``.
    The function is returned unchanged.
    """
    from .registry import registry

    def decorate(func: F) -> F:
        registry.register(
            make_receiver(
                event,
                func,
                dispatcher=dispatcher,
                queue=queue,
                max_attempts=max_attempts,
                name=name,
            )
        )
        return func

    return decorate
