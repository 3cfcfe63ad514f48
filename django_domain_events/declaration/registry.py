"""The receiver registry: ``Receiver`` values by name and by event type, replaceable in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from django_domain_events.conf import settings

OnDead = Literal["block", "skip"]


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
    ordered: bool | None = None
    """Whether it gets the deliveries of one ordering key in order (None: the project's
    ``ORDERED_RECEIVERS``)."""
    on_dead: OnDead | None = None
    """For an ordered receiver, what a dead delivery does to those behind it (None: the
    project's ``ORDERED_ON_DEAD``)."""
    timeout: float | None = None
    """Seconds one run may take before it counts as a failed attempt (None: the project's
    ``RECEIVER_TIMEOUT``)."""

    @property
    def origin(self) -> str:
        """Where the function is defined, for error messages."""
        module = getattr(self.func, "__module__", None) or "?"
        qualname = getattr(self.func, "__qualname__", None) or repr(self.func)
        return f"{module}.{qualname}"


def is_ordered(receiver: Receiver) -> bool:
    """Whether ``receiver`` gets the deliveries of one key in order (its own ``ordered=``, else
    ``DOMAIN_EVENTS["ORDERED_RECEIVERS"]``)."""
    if receiver.ordered is not None:
        return receiver.ordered
    return settings.ORDERED_RECEIVERS


def skips_dead(receiver: Receiver | None) -> bool:
    """Whether a dead delivery to ``receiver`` lets the deliveries behind it go (its own
    ``on_dead=``, else ``DOMAIN_EVENTS["ORDERED_ON_DEAD"]``). A receiver that is no longer
    registered blocks."""
    if receiver is None:
        return False
    on_dead = receiver.on_dead or settings.ORDERED_ON_DEAD
    return on_dead == "skip"


def time_limit_for(receiver: Receiver | None) -> float | None:
    """Seconds one run of ``receiver`` may take (its own ``timeout=``, else
    ``DOMAIN_EVENTS["RECEIVER_TIMEOUT"]``); None for no limit."""
    if receiver is not None and receiver.timeout is not None:
        return receiver.timeout
    return settings.RECEIVER_TIMEOUT


def _same_registration(a: Receiver, b: Receiver) -> bool:
    # A module imported twice (or reloaded) registers a new function object for the same code.
    # One function stacked under two @receiver lines is two registrations: under one name they
    # are a duplicate for the checks to report, not a silent replacement.
    return (a.func is b.func or a.origin == b.origin) and a.event_type == b.event_type


class Registry:
    """Receivers keyed by their stable name.

    The state lives in ``_registry`` (name -> tuple of receivers claiming that name; more than
    one is a duplicate that the system checks report), the attribute Django's
    ``autodiscover_modules`` snapshots and restores when an app's module fails to import.
    """

    def __init__(self) -> None:
        self._state: dict[str, tuple[Receiver, ...]] = {}
        self._by_type: dict[str, tuple[Receiver, ...]] | None = None

    @property
    def _registry(self) -> dict[str, tuple[Receiver, ...]]:
        return self._state

    @_registry.setter
    def _registry(self, state: dict[str, tuple[Receiver, ...]]) -> None:
        self._state = state
        self._by_type = None

    def register(self, receiver: Receiver) -> None:
        """Add ``receiver``; the same function registered again for the same event replaces
        its earlier registration."""
        claims = self._state.get(receiver.name, ())
        kept = tuple(other for other in claims if not _same_registration(other, receiver))
        self._state = {**self._state, receiver.name: (*kept, receiver)}
        self._by_type = None

    def unregister(self, name: str) -> None:
        """Remove every receiver registered under ``name``."""
        self._registry = {key: value for key, value in self._state.items() if key != name}

    def get(self, name: str) -> Receiver | None:
        """The receiver registered as ``name``, or None."""
        claims = self._state.get(name)
        return claims[-1] if claims else None

    def receivers_for(self, event_type: str) -> tuple[Receiver, ...]:
        """The receivers of ``event_type``, in registration order."""
        by_type = self._by_type
        if by_type is None:
            collected: dict[str, list[Receiver]] = {}
            for claims in self._state.values():
                collected.setdefault(claims[-1].event_type, []).append(claims[-1])
            by_type = self._by_type = {key: tuple(value) for key, value in collected.items()}
        return by_type.get(event_type, ())

    def all(self) -> Iterator[Receiver]:
        """Every registered receiver, duplicates included."""
        for claims in self._state.values():
            yield from claims

    @contextmanager
    def isolated(self) -> Iterator[Registry]:
        """Run a block with an empty registry, restoring the previous receivers afterwards."""
        saved = self._state
        self._registry = {}
        try:
            yield self
        finally:
            self._registry = saved


registry = Registry()
"""The registry ``@receiver`` registers into and ``publish()`` reads."""
