"""The dispatcher contract: what hands owed deliveries to whatever runs their receivers."""

from __future__ import annotations

import abc
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent


@dataclass(frozen=True, slots=True)
class OwedDelivery:
    """A delivery handed to a dispatcher: enough to find and run it.

    ``event`` and ``envelope`` are set when the event is already in memory (just published in
    this process); otherwise whoever runs the delivery loads it from the outbox by id.
    ``headers`` likewise, when the event's stored headers are at hand.
    """

    delivery_id: uuid.UUID
    receiver: str
    dispatcher: str
    queue: str
    using: str
    attempts: int = 0
    """Attempts already made before this one."""
    event: DomainEvent | NamedEvent | None = None
    envelope: Envelope | None = None
    ordering_key: str = ""
    """Its ordering key if its receiver is ordered: settling it releases the next in line."""
    headers: Mapping[str, Any] | None = None
    """The event's ``headers`` (its stored trace context), or None when not loaded."""


class Dispatcher(abc.ABC):
    """Base class of dispatchers. Subclass it and name the class's dotted path in
    ``DOMAIN_EVENTS["DISPATCHER"]`` or ``@receiver(dispatcher=...)`` to add a transport.

    ``dispatch()`` is called after commit with the deliveries of one transaction that use this
    dispatcher. It must not raise for one bad delivery: a delivery it cannot hand over stays
    owed in the outbox and the relay dispatches it again later.
    """

    runs_inline: ClassVar[bool] = False
    """Whether it runs each delivery in the calling process, at once, as ``run_delivery()``
    would: the relay then runs them itself (renewing its claims as it goes), and a delivery
    released by settling another runs in the same loop instead of recursing."""

    left_to_relay: ClassVar[bool] = False
    """Whether ``dispatch()`` leaves its deliveries for the relay: the relay then runs them
    itself instead of handing them back to this dispatcher."""

    dispatched_at_insert: ClassVar[bool] = False
    """Whether ``publish()`` writes this dispatcher's deliveries already ``dispatched`` (task
    id: the delivery id), so that handing them over after the commit costs no second write.

    A dispatcher that sets it must put back to ``pending`` what it could not hand over, and
    whoever else gives it existing rows marks them ``dispatched`` first, as the relay's claim
    does. A crash between the commit and the hand-over leaves the deliveries ``dispatched``:
    the relay sends them again once ``dispatched_at`` is older than its lost-task timeout.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        """Hand ``deliveries`` over to be run (or run them)."""
