"""Aggregates that are plain objects: ``EventRecorder`` records their events, a ``UnitOfWork``
publishes them in its transaction, and they are cleared once the outermost transaction commits.

::

    with UnitOfWork() as uow:
        cart = uow.add(Cart(cart_id=7))  # a plain object, not a model
        cart.check_out()  # records CartCheckedOut
    # written with the block's other changes; cleared from cart when the transaction commits

A rollback, of the block or of a transaction around it, leaves the events recorded: a retry
with a new unit of work publishes them again, and never twice in one transaction.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import connections, transaction
from django.db.transaction import Atomic

from django_domain_events.declaration.events import DomainEvent, NamedEvent

_ENTRIES = "_domain_events_entries"

A = TypeVar("A", bound="EventRecorder")


@dataclass(eq=False, slots=True)
class _Entry:
    event: DomainEvent | NamedEvent
    publication: _Publication | None = None
    """The unit of work that published it, while its transaction is open."""


@dataclass(eq=False)
class _Publication:
    """The events one unit of work published, cleared from their aggregates on commit."""

    alias: str
    entries: list[tuple[EventRecorder, _Entry]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hook = self.committed  # one bound method, so identity checks can find it

    def is_open(self) -> bool:
        """Whether its transaction may still commit (Django drops the hooks of a block that
        rolled back)."""
        return any(entry[1] is self.hook for entry in connections[self.alias].run_on_commit)

    def committed(self) -> None:
        for aggregate, entry in self.entries:
            kept: list[_Entry] = aggregate.__dict__.get(_ENTRIES, [])
            if entry in kept:
                kept.remove(entry)


class EventRecorder:
    """Mixin for aggregates that are plain objects: ``record_event()`` collects events on the
    instance until a ``UnitOfWork`` that tracks it publishes them and its transaction commits.

    It adds no ``__init__``; the instance needs a ``__dict__`` (no ``__slots__``-only class).
    For a model, use ``EventRecordingMixin``, which publishes on ``save()``.
    """

    def record_event(self, event: DomainEvent | NamedEvent) -> None:
        """Record ``event`` (a ``DomainEvent`` or ``NamedEvent``) to be published by the unit
        of work tracking this aggregate."""
        if isinstance(event, type):
            raise TypeError(
                f"record_event({event.__qualname__}): pass an instance, e.g. "
                f"record_event({event.__qualname__}(...)), not the class."
            )
        if not isinstance(event, DomainEvent | NamedEvent):
            raise TypeError(
                f"record_event() takes a DomainEvent or a NamedEvent, got "
                f"{type(event).__qualname__} {event!r:.60}."
            )
        # Through __dict__, so that frozen dataclasses can record too.
        entries: list[_Entry] = self.__dict__.setdefault(_ENTRIES, [])
        entries.append(_Entry(event))

    @property
    def recorded_events(self) -> tuple[DomainEvent | NamedEvent, ...]:
        """The events recorded and not yet cleared by a commit, in order (published ones whose
        transaction is still open included)."""
        return tuple(entry.event for entry in self.__dict__.get(_ENTRIES, ()))

    def __getstate__(self) -> dict[str, Any]:
        # Recorded events are an intention of this object in memory; a pickled copy must not
        # publish them again.
        state = dict(self.__dict__)
        state.pop(_ENTRIES, None)
        return state


class UnitOfWork:
    """A transaction that publishes the events its aggregates recorded.

    ``with UnitOfWork(using=...) as uow:`` opens ``transaction.atomic(using=...)`` (a savepoint
    inside your transaction). ``uow.add(aggregate)`` tracks an ``EventRecorder``. When the block
    ends without an exception, the events the tracked aggregates recorded are published with
    ``publish_many()`` inside it; each aggregate forgets them only when the outermost
    transaction commits. On a rollback they stay recorded, so a new unit of work publishes
    them; events already published in a transaction still open are not published twice.
    """

    def __init__(self, *, using: str | None = None) -> None:
        self.using = using
        """The database alias (None: the one ``publish()`` uses)."""
        self.aggregates: list[EventRecorder] = []
        """The aggregates it tracks, in the order they were added."""
        self._atomic: Atomic | None = None

    def add(self, aggregate: A) -> A:
        """Track ``aggregate``, whose recorded events the block publishes; returns it."""
        if not isinstance(aggregate, EventRecorder):
            raise TypeError(
                f"UnitOfWork.add({aggregate!r:.60}): the aggregate must be an EventRecorder; "
                f"add EventRecorder to the bases of {type(aggregate).__qualname__}."
            )
        if all(aggregate is not tracked for tracked in self.aggregates):
            self.aggregates.append(aggregate)
        return aggregate

    def __enter__(self) -> UnitOfWork:
        if self._atomic is not None:
            raise RuntimeError("This UnitOfWork is already in use; create one per block.")
        from django_domain_events.publishing.publisher import _default_alias

        self.using = self.using or _default_alias()
        self._atomic = transaction.atomic(using=self.using)
        self._atomic.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        atomic = self._atomic
        assert atomic is not None
        if exc_type is None:
            try:
                self._publish()
            except BaseException as publish_error:
                atomic.__exit__(type(publish_error), publish_error, publish_error.__traceback__)
                raise
        atomic.__exit__(exc_type, exc, traceback)

    def _publish(self) -> None:
        from django_domain_events.publishing.publisher import publish_many

        assert self.using is not None
        publication = _Publication(self.using)
        for aggregate in self.aggregates:
            for entry in aggregate.__dict__.get(_ENTRIES, ()):
                if entry.publication is None or not entry.publication.is_open():
                    publication.entries.append((aggregate, entry))
        if not publication.entries:
            return
        publish_many([entry.event for _aggregate, entry in publication.entries], using=self.using)
        transaction.on_commit(publication.hook, using=self.using)
        for _aggregate, entry in publication.entries:
            entry.publication = publication
