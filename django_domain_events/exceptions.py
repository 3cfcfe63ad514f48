"""Exceptions raised by django_domain_events, and the three a receiver may raise on purpose."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ImproperlyConfigured


class DomainEventsError(Exception):
    """Base class of every error this app raises."""


class EventDefinitionError(DomainEventsError, TypeError):
    """An event class is declared in a way the outbox cannot store (field types, event_type)."""


class PayloadError(DomainEventsError, TypeError):
    """A payload cannot be stored exactly: wrong type, unsupported value, or too large.

    Raised by ``publish()`` before anything is written, so the caller's transaction is untouched.
    """


class UnknownEventTypeError(DomainEventsError, LookupError):
    """A stored row names an event type that no installed event class declares any more."""


class EventDecodeError(DomainEventsError, ValueError):
    """A stored payload cannot be turned back into its event (schema changed without upcast)."""


class DispatcherError(DomainEventsError):
    """A dispatcher name or class in the settings cannot be used."""


class ReceiverLimitError(DomainEventsError, ImproperlyConfigured):
    """Declaring a receiver would give an event type more receivers than its namespace allows."""


class CatalogueFileError(DomainEventsError, ValueError):
    """A stored event catalogue cannot be read: missing, not JSON, or not a catalogue."""


class MessageFormatError(DomainEventsError, ValueError):
    """A message taken from a broker is not a CloudEvents event this app can read."""


class ReceiverTimedOut(DomainEventsError):
    """A receiver ran longer than its ``timeout`` and was interrupted; the run counts as a
    failed attempt."""

    def __init__(self, receiver: str, seconds: float) -> None:
        self.receiver = receiver
        self.seconds = seconds
        super().__init__(
            f"Receiver {receiver} timed out after {seconds:g} s (its timeout); raise its "
            f"@receiver(timeout=...) or DOMAIN_EVENTS['RECEIVER_TIMEOUT'] if it needs longer."
        )


class RetryAfter(Exception):
    """Raise from a receiver to ask for another attempt after ``seconds``.

    The attempt still counts towards the receiver's ``max_attempts``.
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        if seconds < 0:
            raise ValueError(f"RetryAfter(seconds={seconds!r}): seconds must be >= 0")
        self.seconds = float(seconds)
        self.reason = reason
        super().__init__(reason or f"retry requested after {seconds:g}s")


class GiveUp(Exception):
    """Raise from a receiver to stop retrying: the delivery becomes a dead letter at once."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason or "the receiver gave up")


class ScheduleError(DomainEventsError, ValueError):
    """A due time or delay cannot be used (naive datetime, negative delay, both given);
    raised by ``publish()`` or ``@receiver`` before anything is written or registered."""


class PublishOutsideAtomicError(DomainEventsError, RuntimeError):
    """``publish()`` was called outside ``transaction.atomic()`` while
    ``DOMAIN_EVENTS["PUBLISH_OUTSIDE_ATOMIC"]`` is ``"raise"``."""


class PublishedOutsideAtomic(RuntimeWarning):
    """``publish()`` was called outside ``transaction.atomic()`` while
    ``DOMAIN_EVENTS["PUBLISH_OUTSIDE_ATOMIC"]`` is ``"warn"``: the event commits on its own,
    not with the changes it reports."""


class NotYet(Exception):
    """Raise from a receiver to say "not yet, look again at ``at`` (or after ``delay``)".

    The delivery goes back to ``scheduled`` without spending an attempt. With neither given,
    it is due again at once, for the relay's next pass.
    """

    def __init__(
        self,
        at: dt.datetime | None = None,
        delay: dt.timedelta | None = None,
        reason: str = "",
    ) -> None:
        # due_times imports this module for ScheduleError.
        from django_domain_events.declaration.due_times import due_time

        self.at = due_time(at, delay, where="NotYet", at_name="at")
        self.reason = reason
        super().__init__(reason or f"not yet: due again at {self.at.isoformat()}")
