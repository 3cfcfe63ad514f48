"""Test helpers: capture what a block published, and run owed deliveries to completion.

Both work in plain pytest tests, under Django's ``TestCase`` (where ``on_commit`` hooks only run
inside ``captureOnCommitCallbacks(execute=True)``) and under ``TransactionTestCase``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, router
from django.db.backends.base.base import BaseDatabaseWrapper

from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.delivery.runner import Outcome, owed_delivery, run_delivery
from django_domain_events.models import Delivery, OutboxEvent


@dataclass(frozen=True)
class CapturedEvent:
    """One ``publish()`` call seen by ``capture_events()``."""

    event: DomainEvent | NamedEvent
    envelope: Envelope

    @property
    def event_type(self) -> str:
        """The event's type."""
        return self.envelope.event_type


class CapturedEvents(list[CapturedEvent]):
    """The events published inside a ``capture_events()`` block, in publish order.

    Events are recorded when ``publish()`` returns, so one published in a transaction that later
    rolled back is still listed; check ``OutboxEvent`` rows to see what committed.
    """

    def of_type(self, event: type[DomainEvent] | str) -> list[DomainEvent | NamedEvent]:
        """The published events of one class or event type."""
        event_type = event if isinstance(event, str) else event.event_type
        return [item.event for item in self if item.event_type == event_type]

    @property
    def events(self) -> list[DomainEvent | NamedEvent]:
        """Just the event objects."""
        return [item.event for item in self]

    def assert_published(
        self, event: type[DomainEvent] | str, *, count: int | None = None, **fields: Any
    ) -> list[DomainEvent | NamedEvent]:
        """Assert events of this type were published, optionally ``count`` of them, with the
        given field values (payload keys for named events); return the matching events."""
        candidates = self.of_type(event)
        matching = [item for item in candidates if _has_fields(item, fields)]
        name = event if isinstance(event, str) else event.__qualname__
        if count is None and not matching:
            raise AssertionError(
                f"No {name} published{_with(fields)}. Published: {self._summary()}"
            )
        if count is not None and len(matching) != count:
            raise AssertionError(
                f"Expected {count} {name} published{_with(fields)}, found {len(matching)}. "
                f"Published: {self._summary()}"
            )
        return matching

    def assert_not_published(self, event: type[DomainEvent] | str, **fields: Any) -> None:
        """Assert no event of this type (with these field values) was published."""
        self.assert_published(event, count=0, **fields)

    def _summary(self) -> str:
        if not self:
            return "nothing."
        counts = Counter(item.event_type for item in self)
        return ", ".join(f"{event_type} x{n}" for event_type, n in counts.items()) + "."


def _has_fields(event: DomainEvent | NamedEvent, fields: dict[str, Any]) -> bool:
    if isinstance(event, NamedEvent):
        return all(event.payload.get(key, _MISSING) == value for key, value in fields.items())
    return all(getattr(event, key, _MISSING) == value for key, value in fields.items())


_MISSING = object()


def _with(fields: dict[str, Any]) -> str:
    if not fields:
        return ""
    return " with " + ", ".join(f"{key}={value!r}" for key, value in fields.items())


def in_test_case(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``connection`` is inside the transaction of a Django ``TestCase``, which never
    commits: its ``on_commit`` hooks run only when ``captureOnCommitCallbacks()`` runs them."""
    blocks = connection.atomic_blocks
    return bool(blocks) and any(getattr(block, "_from_testcase", False) for block in blocks)


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Collect every event published inside the block.

    Events are added as ``publish()`` returns, so assertions work inside the block too::

        with capture_events() as published:
            place_order(cart)
        published.assert_published(OrderPlaced, order_id=order.pk)

    """
    from django_domain_events.publishing.captures import captures

    captured = CapturedEvents()

    def record(event: DomainEvent | NamedEvent, envelope: Envelope) -> None:
        captured.append(CapturedEvent(event, envelope))

    captures.append(record)
    try:
        yield captured
    finally:
        captures.remove(record)


@contextmanager
def disposable_event_classes() -> Iterator[None]:
    """Retire the event classes defined inside the block when it ends.

    A class defined in a test stays a ``DomainEvent`` subclass until it is garbage-collected,
    so its event type would still be looked up and reported by the system checks (as a
    duplicate, say) in later tests. Retired classes take part in neither.
    """
    from django_domain_events.declaration.codec import forget_event_class
    from django_domain_events.declaration.events import all_event_subclasses, retire_event_class

    before = all_event_subclasses()
    try:
        yield
    finally:
        for cls in all_event_subclasses() - before:
            retire_event_class(cls)
            forget_event_class(cls)


@dataclass
class DrainResult:
    """How many receiver runs ``drain()`` made, by outcome.

    A delivery that fails twice and then succeeds counts as two ``failed`` and one ``delivered``.
    """

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    scheduled: int = 0
    """Runs whose receiver said ``NotYet``: scheduled again, not run again by ``drain()``."""
    outcomes: Counter[Outcome] = field(default_factory=Counter, repr=False)

    def count(self, outcome: Outcome) -> None:
        """Count one run by its outcome (each outcome's value names its count)."""
        self.outcomes[outcome] += 1
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    @property
    def total(self) -> int:
        """Receiver runs made."""
        return self.delivered + self.failed + self.dead


def drain(*, using: str | None = None, max_rounds: int = 50, batch_size: int = 500) -> DrainResult:
    """Run every runnable delivery now, in this process, until none is left.

    Retries are run at once (their backoff is not waited for) until they succeed or go dead, and
    deliveries of events published by receivers are run too. ``max_rounds`` bounds the loop for
    receivers that keep publishing.
    """
    alias = using or router.db_for_write(OutboxEvent) or DEFAULT_DB_ALIAS
    result = DrainResult()
    for _ in range(max_rounds):
        rows = list(
            Delivery.objects.using(alias).runnable().order_by("created_at", "id")[:batch_size]
        )
        if not rows:
            break
        for row in rows:
            outcome = run_delivery(owed_delivery(row, alias))
            result.count(outcome)
    return result
