"""The consumer: each message taken from the broker runs this project's ``@consumer``
receivers, each in one transaction with its inbox row, and is acknowledged after they commit.

Exactly-once effects come from at-least-once delivery and the inbox: a copy of a message whose
row for a receiver is ``processed`` does nothing for that receiver. A failing receiver's
effects roll back; the message goes back to the broker (``reject(requeue=True)``) until the
receiver's attempts are exhausted, then its row is ``dead`` and the message is acknowledged,
so no message loops for ever. Receivers that already processed it are not run again.
"""

from __future__ import annotations

import enum
import logging
import threading
import traceback as tb
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
from django.db import IntegrityError, close_old_connections, connections, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from django_domain_events.conf import settings
from django_domain_events.declaration.codec import decode_event, decode_json
from django_domain_events.declaration.envelope import Envelope
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.registry import Receiver
from django_domain_events.declaration.retry import policy_for
from django_domain_events.delivery.runner import call_receiver
from django_domain_events.exceptions import (
    DomainEventsError,
    EventDecodeError,
    GiveUp,
    TransportConfigurationError,
    TransportError,
)
from django_domain_events.integration.consumers import consumers_for
from django_domain_events.integration.inbox import NO_RECEIVER, InboxMessage, InboxOutcome
from django_domain_events.integration.messages import Message
from django_domain_events.observability import metrics, tracing
from django_domain_events.transports.base import Destination, Received, Transport

logger = logging.getLogger("django_domain_events")

RECONNECT_DELAY = 1.0
"""Seconds a consumer waits before it connects again after losing the broker; doubled after
each failure in a row, up to ``RECONNECT_MAX_DELAY``."""
RECONNECT_MAX_DELAY = 30.0


class Consumed(enum.Enum):
    """What consuming a message came to, for one receiver (or for the message, when no
    receiver took it)."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    """Its inbox row was already processed: a redelivered or duplicated copy, no effect."""
    FAILED = "failed"
    DEAD = "dead"
    UNKNOWN_TYPE = "unknown_type"
    MALFORMED = "malformed"


@dataclass
class ConsumerTotals:
    """Messages handled, and receiver outcomes counted by kind."""

    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Consumed) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1

    def __str__(self) -> str:
        counted = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
        return f"{self.messages} messages ({counted or 'nothing run'})"


class ConsumerStopped(DomainEventsError):
    """The consumer stopped because it could not record a message's outcome."""


def decode_message(message: Message) -> DomainEvent | NamedEvent:
    """The event ``message`` carries: this project's class for its ``type`` (upcast from its
    ``dataversion``), or a ``NamedEvent``. Raises ``EventDecodeError``."""
    raw_version = message.extensions.get("dataversion", "1")
    try:
        version = int(raw_version)
    except ValueError:
        raise EventDecodeError(
            f"{message.type}: the dataversion extension is {raw_version!r}, not an integer."
        ) from None
    if version < 1:
        raise EventDecodeError(
            f"{message.type}: the dataversion extension is {raw_version!r}; versions start at 1."
        )
    try:
        payload = decode_json(message.data)
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"{message.type}: the data is not JSON: {exc}") from exc
    return decode_event(message.type, version, payload)


def envelope_of(message: Message) -> Envelope:
    """The envelope a ``@consumer`` receiver gets for ``message``."""
    extensions = message.extensions
    return Envelope(
        event_id=_as_uuid(message.id) or uuid.uuid5(uuid.NAMESPACE_URL, message.id),
        event_type=message.type,
        version=_version(message),
        occurred_at=message.time,
        correlation_id=extensions.get("correlationid") or message.id,
        causation_id=_as_uuid(extensions.get("causationid", "")),
        ordering_key=extensions.get("orderingkey", ""),
    )


def _version(message: Message) -> int:
    # What the inbox row records: a version that is no positive integer is kept as 0 (the
    # message is recorded dead by decode_message()).
    try:
        return max(int(message.extensions.get("dataversion", "1")), 0)
    except ValueError:
        return 1


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None


def json_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """``headers`` with values JSON cannot hold (bytes, broker types) turned into strings."""
    plain = (str, int, float, bool, type(None))
    return {
        str(key): value if isinstance(value, plain) else str(value)
        for key, value in headers.items()
    }


class Consumer:
    """Consumes messages of ``queue`` (bound to ``destinations``) from ``transport`` into this
    project's ``@consumer`` receivers, on database ``using``, until ``stop()`` (or after
    ``max_messages``)."""

    def __init__(
        self,
        transport: Transport,
        *,
        queue: str,
        destinations: tuple[Destination, ...],
        using: str = "default",
        max_messages: int | None = None,
    ) -> None:
        self.transport = transport
        self.queue = queue
        self.destinations = destinations
        self.using = using
        self.max_messages = max_messages
        self.totals = ConsumerTotals()
        self.failure: Exception | None = None
        """What stopped it, when recording a message's outcome failed."""
        self.reconnects = 0
        """Times it lost the broker and connected again."""
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop after the message being handled (if any) is settled."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called (or ``max_messages`` were handled)."""
        return self._stop.is_set()

    def run(self) -> ConsumerTotals:
        """Consume until stopped; return the totals. A lost or refused broker connection is
        opened again, after ``RECONNECT_DELAY`` doubling up to ``RECONNECT_MAX_DELAY``: the
        messages left unacknowledged go back to the queue, where the inbox makes their copies
        harmless. Raises ``ConsumerStopped`` if a message's outcome could not be recorded (the
        message was given back to the broker)."""
        delay = RECONNECT_DELAY
        try:
            while not self._stop.is_set():
                handled = self.totals.messages
                try:
                    self.transport.consume(self.destinations, self.queue, self.handle, self._stop)
                    break
                except TransportConfigurationError:
                    raise
                except TransportError as exc:
                    if self._stop.is_set():
                        break
                    if self.totals.messages != handled:
                        delay = RECONNECT_DELAY
                    logger.warning(
                        "Consumer of queue %r lost the broker (%s); connecting again in %g s",
                        self.queue,
                        exc,
                        delay,
                    )
                    self.reconnects += 1
                    self._stop.wait(delay)
                    delay = min(delay * 2, RECONNECT_MAX_DELAY)
        finally:
            close_old_connections()
        if self.failure is not None:
            raise ConsumerStopped(
                f"The consumer stopped: a message's outcome could not be recorded in the inbox "
                f"({type(self.failure).__qualname__}: {self.failure}); the message went back "
                f"to the broker. Fix the cause (the database?) and start it again."
            ) from self.failure
        return self.totals

    def handle(self, received: Received) -> None:
        """Consume one message and settle it with the broker."""
        if self._stop.is_set():
            # Taken as the consumer stopped: left unsettled, the broker gives it to another.
            return
        close_old_connections()
        try:
            requeue = self._consume(received)
        except Exception as exc:
            # The inbox could not be written (the database is down): nothing committed for
            # this message, so the broker must keep it. Going on would take it back at once,
            # round and round: stop, and let run() raise, so the process exits with the error
            # and its supervisor restarts it (with its own backoff).
            logger.exception("Consuming a message failed before its outcome was recorded")
            received.reject(requeue=True)
            self.failure = exc
            self._stop.set()
            return
        else:
            if requeue:
                received.reject(requeue=True)
            elif requeue is None:
                received.reject(requeue=False)
            else:
                received.ack()
        self.totals.messages += 1
        if self.max_messages is not None and self.totals.messages >= self.max_messages:
            self._stop.set()

    def _consume(self, received: Received) -> bool | None:
        """True: give it back to the broker; False: acknowledge; None: dead-letter it."""
        headers = json_headers(received.raw_headers)
        if received.message is None:
            self._count(record_unread(received.error, headers, received.raw_body, self.using))
            return None if settings.CONSUMER_UNKNOWN_TYPES == "dead_letter" else False
        outcomes = consume_message(
            received.message, headers, received.raw_body, using=self.using, broker=True
        )
        for outcome in outcomes:
            self._count(outcome)
        if Consumed.FAILED in outcomes:
            return True
        if Consumed.UNKNOWN_TYPE in outcomes:
            return None if settings.CONSUMER_UNKNOWN_TYPES == "dead_letter" else False
        return False

    def _count(self, outcome: Consumed) -> None:
        self.totals.add(outcome)
        if metrics.enabled():
            metrics.consumed(outcome.value)


def consume_message(
    message: Message,
    raw_headers: Mapping[str, Any],
    raw_body: bytes,
    *,
    using: str = "default",
    broker: bool = False,
    only: str | None = None,
) -> list[Consumed]:
    """Run every ``@consumer`` receiver of ``message`` (or only the one named ``only``), each
    in its own transaction with its inbox row; one outcome per receiver. ``broker``: the
    message came from the broker, which can give it again after a failure; a failure outside
    it (a retry from the inbox) leaves the row dead."""
    receivers = consumers_for(message.type)
    if only is not None:
        receivers = tuple(found for found in receivers if found.name == only)
    if not receivers:
        _record_once(message, raw_headers, raw_body, using, InboxOutcome.UNKNOWN_TYPE)
        return [Consumed.UNKNOWN_TYPE]
    envelope = envelope_of(message)
    try:
        event: DomainEvent | NamedEvent | None = decode_message(message)
        decode_error: Exception | None = None
    except Exception as exc:
        # Another attempt cannot decode it better (an upcast() that raises included): dead
        # at once, kept for after a deploy.
        event, decode_error = None, exc
    outcomes = []
    for found in receivers:
        inbox = _Inbox(message, found, raw_headers, raw_body, using)
        if event is None:
            assert decode_error is not None
            outcomes.append(inbox.record_failure(decode_error, requeue=False))
        else:
            outcomes.append(inbox.run(event, envelope, requeue=broker))
    return outcomes


class _Inbox:
    """One message's inbox row for one receiver, and running the receiver with it."""

    def __init__(
        self,
        message: Message,
        receiver: Receiver,
        raw_headers: Mapping[str, Any],
        raw_body: bytes,
        using: str,
    ) -> None:
        self.message = message
        self.receiver = receiver
        self.raw_headers = raw_headers
        self.raw_body = raw_body
        self.using = using
        self.rows = InboxMessage.objects.using(using).filter(
            message_id=message.id, receiver=receiver.name
        )

    def run(
        self, event: DomainEvent | NamedEvent, envelope: Envelope, *, requeue: bool
    ) -> Consumed:
        """Run the receiver in one transaction with its row marked processed."""
        try:
            with transaction.atomic(using=self.using):
                attempts = self._claim()
                if attempts is None:
                    return Consumed.DUPLICATE
                seen = replace(envelope, receiver=self.receiver.name, attempt=attempts + 1)
                if tracing.enabled():
                    with tracing.ConsumeSpan(seen, self.message.extensions):
                        call_receiver(self.receiver, event, seen)
                else:
                    call_receiver(self.receiver, event, seen)
        except Exception as exc:
            return self.record_failure(exc, requeue=requeue)
        return Consumed.PROCESSED

    def _claim(self) -> int | None:
        """Insert the row as processed, or lock the earlier row of a failed try; the attempts
        failed so far, or None if the message was processed already."""
        now = timezone.now()
        if self._new_row(InboxOutcome.PROCESSED, received_at=now, processed_at=now):
            return 0
        # Another copy's row: on PostgreSQL the insert waited for its transaction to end.
        found = self.rows.select_for_update().values_list("outcome", "attempts").first()
        if found is None or found[0] == InboxOutcome.PROCESSED:
            return None
        self.rows.update(
            outcome=InboxOutcome.PROCESSED,
            processed_at=now,
            last_error="",
            traceback="",
            raw_headers=None,
            raw_body=None,
        )
        return int(found[1])

    def record_failure(self, exc: BaseException, *, requeue: bool) -> Consumed:
        """Record a failed run (its effects rolled back): failed if the broker gives the
        message again, dead once attempts are exhausted, the receiver gave up, or no
        broker will give it again."""
        error = f"{type(exc).__qualname__}: {exc}"[:2000]
        trace = "".join(tb.format_exception(exc))
        logger.warning(
            "Consumer %s failed on message %s (%s): %s",
            self.receiver.name,
            self.message.id,
            self.message.type,
            error,
        )
        policy = policy_for(self.receiver)
        with transaction.atomic(using=self.using):
            if self._new_row(InboxOutcome.FAILED, received_at=timezone.now(), attempts=1):
                attempts = 1
            else:
                found = self.rows.select_for_update().values_list("outcome", "attempts").first()
                if found is None or found[0] == InboxOutcome.PROCESSED:
                    return Consumed.DUPLICATE
                attempts = int(found[1]) + 1
            dead = not requeue or isinstance(exc, GiveUp) or policy.exhausted(attempts)
            outcome = InboxOutcome.DEAD if dead else InboxOutcome.FAILED
            self.rows.update(
                outcome=outcome,
                attempts=attempts,
                last_error=error,
                traceback=trace,
                raw_headers=dict(self.raw_headers),
                raw_body=self.raw_body,
            )
        return Consumed.DEAD if dead else Consumed.FAILED

    def _new_row(self, outcome: str, **values: Any) -> bool:
        """Insert this message's row for the receiver; False if one exists already (the
        unique pair), in which case nothing was written."""
        message = self.message
        keep = outcome != InboxOutcome.PROCESSED
        row = InboxMessage(
            message_id=message.id,
            receiver=self.receiver.name,
            outcome=outcome,
            raw_headers=dict(self.raw_headers) if keep else None,
            raw_body=self.raw_body if keep else None,
            **_described(message),
            **values,
        )
        return insert_unless_present(row, self.using)


def _described(message: Message) -> dict[str, Any]:
    return {
        "source": message.source[:255],
        "event_type": message.type[:255],
        "version": _version(message),
        "event_id": _as_uuid(message.id),
        "correlation_id": message.extensions.get("correlationid", "")[:255],
    }


def _record_once(
    message: Message, headers: Mapping[str, Any], body: bytes, using: str, outcome: str
) -> None:
    """Record a message no receiver took; a copy of one already recorded adds nothing."""
    try:
        with transaction.atomic(using=using):
            InboxMessage.objects.using(using).create(
                message_id=message.id,
                receiver=NO_RECEIVER,
                outcome=outcome,
                received_at=timezone.now(),
                raw_headers=dict(headers),
                raw_body=body,
                last_error=f"No @consumer receiver takes {message.type!r} messages.",
                **_described(message),
            )
    except IntegrityError:
        pass


def record_unread(
    error: BaseException | None, headers: Mapping[str, Any], body: bytes, using: str
) -> Consumed:
    """Record a message that cannot be read as CloudEvents, with why."""
    message_id = str(headers.get("ce-id") or headers.get("id") or "") or f"malformed-{uuid.uuid4()}"
    try:
        with transaction.atomic(using=using):
            InboxMessage.objects.using(using).create(
                message_id=message_id[:255],
                receiver=NO_RECEIVER,
                outcome=InboxOutcome.MALFORMED,
                received_at=timezone.now(),
                raw_headers=dict(headers),
                raw_body=body,
                last_error=str(error or "unreadable message")[:2000],
            )
    except IntegrityError:
        pass
    return Consumed.MALFORMED


def insert_unless_present(row: InboxMessage, using: str) -> bool:
    """Insert ``row``; return False, having written nothing, if its (message id, receiver) pair
    is taken. On PostgreSQL and SQLite one ``INSERT … ON CONFLICT (the pair) DO NOTHING``; elsewhere
    (MySQL's ``INSERT IGNORE`` would also swallow other errors) an INSERT in a savepoint, whose
    ``IntegrityError`` says the same: two statements more."""
    connection = connections[using]
    if connection.vendor not in ("postgresql", "sqlite"):
        try:
            with transaction.atomic(using=using):
                row.save(using=using, force_insert=True)
        except IntegrityError:
            return False
        return True
    query = InsertQuery(InboxMessage)
    query.insert_values(list(InboxMessage._meta.concrete_fields), [row])
    [(sql, params)] = query.get_compiler(using=using).as_sql()
    # Only the pair's conflict is let through; any other constraint still raises.
    pair = ", ".join(
        connection.ops.quote_name(str(getattr(InboxMessage._meta.get_field(name), "column", name)))
        for name in ("message_id", "receiver")
    )
    sql += f" ON CONFLICT ({pair}) DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.rowcount == 1)
