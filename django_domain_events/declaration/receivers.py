"""The ``@receiver`` decorator, class-based receivers (``@receiver_class`` with ``@handles``),
which register ``Receiver`` values in the registry."""

from __future__ import annotations

import datetime as dt
import inspect
import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from django_domain_events.declaration.due_times import check_delay
from django_domain_events.declaration.events import DomainEvent
from django_domain_events.declaration.namespaces import check_room
from django_domain_events.declaration.registry import (
    DEFAULT_NAMESPACE,
    WILDCARD,
    OnDead,
    Receiver,
    registry,
)

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


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
    ordered: bool | None = None,
    on_dead: OnDead | None = None,
    timeout: float | None = None,
    once: bool = False,
    allow_sync: bool = False,
    dry_run: bool = False,
    namespace: str = DEFAULT_NAMESPACE,
    delay: dt.timedelta | None = None,
    shares_commit: bool = False,
) -> Receiver:
    """Build a ``Receiver``, refusing argument values that can never be right."""
    if not isinstance(target, str | type):
        raise TypeError(
            f"@receiver() takes an event class or an event type string, got {target!r}."
        )
    if isinstance(target, str) and not target:
        raise ValueError("@receiver(''): the event type must be a non-empty string.")
    if isinstance(target, str) and WILDCARD in target and not _valid_wildcard(target):
        raise ValueError(
            f"@receiver({target!r}): a wildcard is '*' (every event) or 'prefix.*' (every "
            f"event type starting with 'prefix.'); '*' may stand only for the whole last part."
        )
    if not isinstance(once, bool):
        raise ValueError(f"@receiver(once={once!r}): give True or False.")
    if not isinstance(allow_sync, bool):
        raise ValueError(f"@receiver(allow_sync={allow_sync!r}): give True or False.")
    if not isinstance(dry_run, bool):
        raise ValueError(f"@receiver(dry_run={dry_run!r}): give True or False.")
    if not isinstance(shares_commit, bool):
        raise ValueError(f"@receiver(shares_commit={shares_commit!r}): give True or False.")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise ValueError(f"@receiver(max_attempts={max_attempts!r}): give an integer >= 1.")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"@receiver(name={name!r}): give a non-empty string.")
    if ordered is not None and not isinstance(ordered, bool):
        raise ValueError(f"@receiver(ordered={ordered!r}): give True or False.")
    if on_dead is not None and on_dead not in ("block", "skip"):
        raise ValueError(
            f"@receiver(on_dead={on_dead!r}): give 'block' (later deliveries of the key wait "
            f"until a person retries the dead one) or 'skip' (they go on)."
        )
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"@receiver(timeout={timeout!r}): give a number of seconds above 0.")
    if delay is not None:
        check_delay(delay, where="@receiver(delay=...)")
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
        ordered=ordered,
        on_dead=on_dead,
        timeout=None if timeout is None else float(timeout),
        once=once,
        allow_sync=allow_sync,
        dry_run=dry_run,
        namespace=namespace,
        delay=delay or None,
        shares_commit=shares_commit,
    )


def _valid_wildcard(target: str) -> bool:
    prefix = target[:-2]
    return target == WILDCARD or (target.endswith(".*") and bool(prefix) and WILDCARD not in prefix)


def register(made: Receiver) -> None:
    """Register ``made``, raising ``ReceiverLimitError`` if its namespace has no room for it."""
    check_room(made)
    registry.register(made)


def receiver(
    event: type[DomainEvent] | str,
    *,
    dispatcher: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    name: str | None = None,
    ordered: bool | None = None,
    on_dead: OnDead | None = None,
    timeout: float | None = None,
    once: bool = False,
    allow_sync: bool = False,
    dry_run: bool = False,
    delay: dt.timedelta | None = None,
    shares_commit: bool = False,
) -> Callable[[F], F]:
    """Register the decorated function (sync or ``async def``) as a receiver of ``event``.

    ``event`` is a ``DomainEvent`` subclass, a named event type, or a wildcard: ``"*"`` for
    every event, ``"billing.*"`` for every event type starting with ``"billing."``. With
    ``once=True`` only the first event it matches gets a delivery, across processes.
    ``dispatcher`` and ``max_attempts`` override the project settings for this receiver;
    ``queue`` is passed to dispatchers that have queues; ``name`` overrides the stable default
    ``"module.qualname"``. With ``ordered=True`` the deliveries of one ordering key reach it
    one at a time in publish order; ``on_dead`` says whether a dead one holds up the rest
    (``"block"``) or not (``"skip"``). ``timeout`` is how many seconds one run may take before
    it counts as a failed attempt (None: ``DOMAIN_EVENTS["RECEIVER_TIMEOUT"]``). With ``delay``
    its deliveries are due that long after publish (unless ``publish()`` gives a due time);
    until then they are ``scheduled`` and the relay runs them once due.
    ``allow_sync=True`` lets a receiver of an integration event run on the ``"sync"``
    dispatcher (system check E012 refuses it otherwise). ``dry_run=True`` declares that it
    takes a keyword-only ``commit`` argument, and ``collect_events(commit=False)`` calls it
    with ``commit=False`` to preview its effects. ``shares_commit=True`` declares that all its
    effects are in the outbox's database (or idempotent), so the relay may commit several of
    its deliveries in one transaction (see "Deliveries that share a commit" in the docs).
    The function is returned unchanged.
    """

    def decorate(func: F) -> F:
        register(
            make_receiver(
                event,
                func,
                dispatcher=dispatcher,
                queue=queue,
                max_attempts=max_attempts,
                name=name,
                ordered=ordered,
                on_dead=on_dead,
                timeout=timeout,
                once=once,
                allow_sync=allow_sync,
                dry_run=dry_run,
                delay=delay,
                shares_commit=shares_commit,
            )
        )
        return func

    return decorate


# Class-based receivers ---------------------------------------------------------------------------

_HANDLES_ATTR = "_domain_events_handles"

# Methods marked with @handles whose class no @receiver_class has registered yet; the system
# checks report the ones still alive at start-up (a forgotten class decorator).
_unclaimed: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class _Handles:
    """One ``@handles(...)`` on a method: what ``@receiver_class`` registers it for."""

    target: type | str
    dispatcher: str | None
    queue: str | None
    max_attempts: int | None
    name: str | None
    ordered: bool | None
    on_dead: OnDead | None
    timeout: float | None
    once: bool
    allow_sync: bool
    dry_run: bool
    delay: dt.timedelta | None
    shares_commit: bool


def handles(
    event: type[DomainEvent] | str,
    *,
    dispatcher: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    name: str | None = None,
    ordered: bool | None = None,
    on_dead: OnDead | None = None,
    timeout: float | None = None,
    once: bool = False,
    allow_sync: bool = False,
    dry_run: bool = False,
    delay: dt.timedelta | None = None,
    shares_commit: bool = False,
) -> Callable[[F], F]:
    """Mark a method of a ``@receiver_class`` class as a receiver of ``event``.

    Takes the same arguments as ``@receiver``. The method's receiver name defaults to
    ``"module.Class.method"``. The method is returned unchanged.
    """

    def decorate(func: F) -> F:
        if not inspect.isfunction(func):
            raise TypeError(
                f"@handles() decorates methods (plain or async def functions in a class "
                f"body), got {func!r}."
            )
        # Refuse the same argument mistakes as @receiver, at once.
        make_receiver(
            event,
            func,
            dispatcher=dispatcher,
            queue=queue,
            max_attempts=max_attempts,
            name=name,
            ordered=ordered,
            on_dead=on_dead,
            timeout=timeout,
            once=once,
            allow_sync=allow_sync,
            dry_run=dry_run,
            delay=delay,
            shares_commit=shares_commit,
        )
        marks: list[_Handles] = func.__dict__.setdefault(_HANDLES_ATTR, [])
        marks.append(
            _Handles(
                event,
                dispatcher,
                queue,
                max_attempts,
                name,
                ordered,
                on_dead,
                timeout,
                once,
                allow_sync,
                dry_run,
                delay,
                shares_commit,
            )
        )
        _unclaimed.add(func)
        return func

    return decorate


def unclaimed_handlers() -> list[Callable[..., Any]]:
    """Methods marked with ``@handles`` whose class is not decorated with ``@receiver_class``."""
    return list(_unclaimed)


InstanceScope = Literal["delivery", "process"]


@overload
def receiver_class(cls: C, /) -> C: ...


@overload
def receiver_class(*, scope: InstanceScope = "delivery") -> Callable[[C], C]: ...


def receiver_class(
    cls: C | None = None, /, *, scope: InstanceScope = "delivery"
) -> C | Callable[[C], C]:
    """Register each ``@handles`` method of the decorated class as a receiver.

    The class is instantiated without arguments: by default once per delivery (a fresh
    instance, nothing shared between deliveries or threads), or with ``scope="process"`` once
    per process, on its first delivery, shared by every thread after that. Works bare
    (``@receiver_class``) and with arguments; returns the class unchanged.
    """
    if scope not in ("delivery", "process"):
        raise ValueError(f"@receiver_class(scope={scope!r}): use 'delivery' or 'process'.")

    def decorate(target: C) -> C:
        _register_class(target, scope)
        return target

    if cls is None:
        return decorate
    return decorate(cls)


def _register_class(cls: type, scope: InstanceScope) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"@receiver_class decorates a class, got {cls!r}.")
    try:
        inspect.signature(cls).bind()
    except TypeError as exc:
        raise TypeError(
            f"@receiver_class: {cls.__qualname__}() must be callable without arguments, since "
            f"it is instantiated for its deliveries ({exc})."
        ) from exc
    except ValueError:
        pass  # no signature to inspect (a builtin base): let the first delivery tell
    # The class's own attributes win over its bases', as attribute lookup does.
    attributes: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        attributes.update(vars(klass))
    instance = _instance_factory(cls, scope)
    found = []
    for attr, value in attributes.items():
        marks: list[_Handles] = getattr(value, _HANDLES_ATTR, None) or []
        for mark in marks:
            found.append(_method_receiver(cls, attr, value, mark, instance))
        if marks:
            _unclaimed.discard(value)
    if not found:
        raise TypeError(
            f"@receiver_class: {cls.__qualname__} has no method decorated with @handles(...)."
        )
    for method_receiver in found:
        register(method_receiver)


def _instance_factory(cls: type, scope: InstanceScope) -> Callable[[], Any]:
    if scope == "delivery":
        return cls
    lock = threading.Lock()
    made: list[Any] = []

    def shared() -> Any:
        if not made:
            with lock:
                if not made:
                    made.append(cls())
        return made[0]

    return shared


def _method_receiver(
    cls: type, attr: str, method: Callable[..., Any], mark: _Handles, instance: Callable[[], Any]
) -> Receiver:
    # The registered function gets an instance and calls the method on it; it shows the
    # method's signature without ``self``, so envelope detection and the system checks see
    # what a delivery will call.
    if inspect.iscoroutinefunction(method):

        async def call_async(event: Any, **kwargs: Any) -> Any:
            return await getattr(instance(), attr)(event, **kwargs)

        call: Callable[..., Any] = call_async
    else:

        def call_sync(event: Any, **kwargs: Any) -> Any:
            return getattr(instance(), attr)(event, **kwargs)

        call = call_sync
    try:
        signature = inspect.signature(method)
        call.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=list(signature.parameters.values())[1:]
        )
    except (TypeError, ValueError):
        pass
    call.__module__ = cls.__module__
    call.__qualname__ = f"{cls.__qualname__}.{attr}"
    call.__name__ = attr
    call.__doc__ = method.__doc__
    return make_receiver(
        mark.target,
        call,
        dispatcher=mark.dispatcher,
        queue=mark.queue,
        max_attempts=mark.max_attempts,
        name=mark.name or f"{cls.__module__}.{cls.__qualname__}.{attr}",
        ordered=mark.ordered,
        on_dead=mark.on_dead,
        timeout=mark.timeout,
        once=mark.once,
        allow_sync=mark.allow_sync,
        dry_run=mark.dry_run,
        delay=mark.delay,
        shares_commit=mark.shares_commit,
    )
