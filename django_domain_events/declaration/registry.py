"""The receiver registry: ``Receiver`` values by name, and by namespace and event type (wildcard
receivers included), replaceable in tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from django_domain_events.conf import settings

OnDead = Literal["block", "skip"]

DEFAULT_NAMESPACE = "default"
"""The namespace of receivers declared with ``@receiver``, the one ``publish()`` delivers to."""

WILDCARD = "*"
"""The event type of a receiver of every event; ``"prefix.*"`` receives every event type that
starts with ``"prefix."``."""

# Event types looked up for a namespace with wildcard receivers but no receiver of their own are
# remembered too; past this many, for an application publishing endless distinct named types,
# they are matched on every publish instead.
_MAX_CACHED_WILDCARD_MATCHES = 10_000


def is_wildcard(event_type: str) -> bool:
    """Whether ``event_type``, given to ``@receiver``, is a wildcard (``"*"`` or ``"prefix.*"``)."""
    return event_type == WILDCARD or event_type.endswith(".*")


def pattern_matches(pattern: str, event_type: str) -> bool:
    """Whether a receiver of ``pattern`` (an event type or a wildcard) receives ``event_type``."""
    if pattern == WILDCARD:
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


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
    once: bool = False
    """Delivered the first event it matches only, across processes (a claim row decides)."""
    namespace: str = DEFAULT_NAMESPACE
    """The namespace it belongs to: it receives only the events published to that namespace."""
    allow_sync: bool = False
    """Whether it may run on the ``"sync"`` dispatcher although it receives an integration
    event (system check E012 refuses that otherwise)."""
    dry_run: bool = False
    """Whether it takes a keyword-only ``commit`` argument and supports being previewed with
    ``commit=False`` (by ``collect_events(commit=False)``)."""
    delay: dt.timedelta | None = None
    """How long after publish its deliveries are due (None: at once), unless ``publish()`` is
    given a due time of its own."""
    shares_commit: bool = False
    """Whether all its effects are in the outbox's database (or idempotent), so that the relay
    may commit several of its deliveries in one transaction."""

    @property
    def is_wildcard(self) -> bool:
        """Whether it receives every event type under a prefix (``event_type`` is the pattern)."""
        return is_wildcard(self.event_type)

    def matches(self, event_type: str) -> bool:
        """Whether it receives events of ``event_type``."""
        return pattern_matches(self.event_type, event_type)

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
    # are a duplicate for the checks to report, not a silent replacement; so is one function
    # declared in two namespaces.
    return (
        (a.func is b.func or a.origin == b.origin)
        and a.event_type == b.event_type
        and a.namespace == b.namespace
    )


class Registry:
    """Receivers keyed by their stable name.

    The state lives in ``_registry`` (name -> tuple of receivers claiming that name; more than
    one is a duplicate that the system checks report), the attribute Django's
    ``autodiscover_modules`` snapshots and restores when an app's module fails to import.
    """

    def __init__(self) -> None:
        self._state: dict[str, tuple[Receiver, ...]] = {}
        self._by_type: dict[str, _Index] | None = None
        self._has_once = False

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

    def receivers_for(
        self, event_type: str, namespace: str = DEFAULT_NAMESPACE
    ) -> tuple[Receiver, ...]:
        """The receivers of ``event_type`` in ``namespace``, wildcard receivers included, in
        registration order. Worked out once per event type until the next registration."""
        by_namespace = self._by_type
        if by_namespace is None:
            by_namespace = self._indexes()
        index = by_namespace.get(namespace)
        if index is None:
            return ()
        found = index.by_type.get(event_type)
        if found is None:
            return index.unnamed(event_type) if index.wildcards else ()
        return found

    def with_receiver(self, receiver: Receiver) -> Registry:
        """A copy of this registry with ``receiver`` registered too (to ask what it would do)."""
        copy = Registry()
        copy._registry = self._state
        copy.register(receiver)
        return copy

    @property
    def has_once_receivers(self) -> bool:
        """Whether any registered receiver has ``once=True`` (publishing skips claims if not)."""
        if self._by_type is None:
            self._indexes()
        return self._has_once

    def _indexes(self) -> dict[str, _Index]:
        by_namespace = _index(self._state)
        self._has_once = any(index.once for index in by_namespace.values())
        self._by_type = by_namespace
        return by_namespace

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


class _Index:
    """The receivers of one namespace: by the event types they name, and the wildcard ones."""

    __slots__ = ("by_type", "once", "wildcards")

    def __init__(
        self, by_type: dict[str, tuple[Receiver, ...]], wildcards: tuple[Receiver, ...], once: bool
    ) -> None:
        self.by_type = by_type
        self.wildcards = wildcards
        self.once = once

    def unnamed(self, event_type: str) -> tuple[Receiver, ...]:
        """The receivers of an event type no receiver names: the wildcards that match it."""
        found = tuple(receiver for receiver in self.wildcards if receiver.matches(event_type))
        if len(self.by_type) < _MAX_CACHED_WILDCARD_MATCHES:
            self.by_type[event_type] = found
        return found


def _index(state: dict[str, tuple[Receiver, ...]]) -> dict[str, _Index]:
    in_namespace: dict[str, list[Receiver]] = {}
    for claims in state.values():
        in_namespace.setdefault(claims[-1].namespace, []).append(claims[-1])
    indexes = {}
    for namespace, receivers in in_namespace.items():
        wildcards = tuple(receiver for receiver in receivers if receiver.is_wildcard)
        named: dict[str, list[Receiver]] = {}
        for receiver in receivers:
            if not receiver.is_wildcard:
                named.setdefault(receiver.event_type, []).append(receiver)
        if wildcards:
            place = {receiver.name: number for number, receiver in enumerate(receivers)}
            for event_type, exact in named.items():
                exact.extend(receiver for receiver in wildcards if receiver.matches(event_type))
                exact.sort(key=lambda receiver: place[receiver.name])
        by_type = {event_type: tuple(found) for event_type, found in named.items()}
        once = any(receiver.once for receiver in receivers)
        indexes[namespace] = _Index(by_type, wildcards, once)
    return indexes


registry = Registry()
"""The registry ``@receiver`` registers into and ``publish()`` reads."""
