"""``EventRecordingMixin``: aggregates that record events and publish them when they are saved.

::

    class Order(EventRecordingMixin, models.Model): ...


    order.status = Order.Status.CANCELLED
    order.record_event(OrderCancelled(order_id=order.pk, reason=reason))
    order.save(update_fields=["status"])  # the row and the event, in one transaction

The events go through the outbox like any ``publish()``: written in the save's transaction,
dispatched after it commits, never published if it rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from django.db import models, router, transaction

from django_domain_events.declaration.events import DomainEvent, NamedEvent

RecordedEvent: TypeAlias = DomainEvent | NamedEvent | Callable[[Any], DomainEvent | NamedEvent]
"""An event, or a function of the saved instance that returns one."""

_RECORDED = "_domain_events_recorded"

# A plain class at run time, so that this module imports before Django's app registry is ready
# (an abstract model could not); the type checker sees the Model it is mixed into.
if TYPE_CHECKING:
    _MixinBase = models.Model
else:
    _MixinBase = object


class EventRecordingMixin(_MixinBase):
    """Model mixin: ``record_event()`` collects events on the instance, ``save()`` publishes
    them in its transaction and clears them.

    List it before ``models.Model`` (or another model base) so that its ``save()`` runs. It
    adds no field, so no migration. ``save()`` without recorded events is Django's own.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if models.Model in mro and mro.index(models.Model) < mro.index(EventRecordingMixin):
            raise TypeError(
                f"{cls.__qualname__} lists EventRecordingMixin after models.Model, so Django's "
                f"save() runs instead of the one that publishes the recorded events. Write "
                f"class {cls.__name__}(EventRecordingMixin, models.Model)."
            )

    def record_event(self, event: RecordedEvent) -> None:
        """Record ``event`` to be published by the next successful ``save()``.

        ``event`` is a ``DomainEvent`` or ``NamedEvent``, or a function taking the instance and
        returning one, called after the row is written: use it for values the database assigns,
        such as the primary key of a new row.
        """
        if isinstance(event, type):
            raise TypeError(
                f"record_event({event.__qualname__}): pass an instance, e.g. "
                f"record_event({event.__qualname__}(...)), not the class."
            )
        if not isinstance(event, DomainEvent | NamedEvent) and not callable(event):
            raise TypeError(
                f"record_event() takes a DomainEvent, a NamedEvent or a function of the "
                f"instance returning one, got {type(event).__qualname__} {event!r:.60}."
            )
        recorded: list[RecordedEvent] = self.__dict__.setdefault(_RECORDED, [])
        recorded.append(event)

    @property
    def recorded_events(self) -> tuple[RecordedEvent, ...]:
        """The events recorded and not yet published by a save, in order."""
        return tuple(self.__dict__.get(_RECORDED, ()))

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the instance and publish its recorded events, atomically.

        The row and the events are written in one ``atomic()`` block (a savepoint inside your
        transaction, or a transaction of its own). The events are cleared once that succeeds;
        if it raises, they stay recorded and nothing is published.
        """
        recorded: list[RecordedEvent] | None = self.__dict__.get(_RECORDED)
        if not recorded:
            super().save(*args, **kwargs)
            return
        from django_domain_events.publishing.publisher import publish_many

        pending = list(recorded)
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            super().save(*args, **kwargs)
            events = [
                item if isinstance(item, DomainEvent | NamedEvent) else item(self)
                for item in pending
            ]
            publish_many(events, using=self._state.db or using)
        # Events recorded meanwhile (by a factory, say) wait for the next save.
        del recorded[: len(pending)]

    def __getstate__(self) -> dict[str, Any]:
        # Recorded events are an intention of this object in memory, not part of its state; a
        # pickled copy (a cache entry, say) must not publish them again.
        state: dict[str, Any] = super().__getstate__()
        state.pop(_RECORDED, None)
        return state
