"""``publish()``: write events and their deliveries in the caller's transaction, and hand the
deliveries to their dispatchers once that transaction commits.

The deliveries of one transaction are dispatched by one ``on_commit`` hook (``batch.py``).

Two blocks change a publish, each found through a context variable read once per call: inside
``collect_events()`` (``collecting.py``) the rows are built and handed to the block instead of
written, and inside ``use_dispatcher()`` every delivery gets that dispatcher.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec
from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from django_domain_events.conf import settings
from django_domain_events.declaration.codec import (
    check_mariadb_depth,
    decode_json,
    encode_event,
    encode_payload,
)
from django_domain_events.declaration.due_times import due_time
from django_domain_events.declaration.envelope import Envelope, current_envelope
from django_domain_events.declaration.events import (
    DomainEvent,
    NamedEvent,
    check_key,
    event_class_for,
    key_of,
)
from django_domain_events.declaration.identifiers import check_identifier
from django_domain_events.declaration.registry import (
    DEFAULT_NAMESPACE,
    WILDCARD,
    is_ordered,
    registry,
)
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.dispatchers.override import _override as _dispatcher_override
from django_domain_events.exceptions import (
    PayloadError,
    PublishedOutsideAtomic,
    PublishOutsideAtomicError,
)
from django_domain_events.ids import uuid7
from django_domain_events.models import DELIVERY_COLUMNS, DeliveryState, OutboxEvent
from django_domain_events.observability import debug_logging, tracing
from django_domain_events.publishing import once_claims, sequencing
from django_domain_events.publishing.batch import batch_for
from django_domain_events.publishing.captures import captures
from django_domain_events.publishing.writer import writer_for

logger = logging.getLogger("django_domain_events")

_ORDERING_KEY = DELIVERY_COLUMNS.index("ordering_key")


class _Collector(Protocol):
    def add(self, rows: _Rows) -> None: ...


# The innermost collecting.collect_events() block of this context: publish() hands it the rows
# it built instead of writing them.
_collector: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "django_domain_events_collector", default=None
)


class _Prepared:
    """One validated, encoded event ready to be written."""

    __slots__ = ("data", "event", "event_type", "integration", "ordering_key", "version")

    def __init__(
        self,
        event: DomainEvent | NamedEvent,
        event_type: str,
        version: int,
        data: bytes,
        integration: bool = False,
        ordering_key: str = "",
    ) -> None:
        self.event = event
        self.event_type = event_type
        self.version = version
        self.data = data
        self.integration = integration
        self.ordering_key = ordering_key


def _prepare(
    event: object,
    payload: Mapping[str, Any] | None,
    max_bytes: int,
    ordering_key: Any = None,
) -> _Prepared:
    # ``event`` is typed object: callers without type checking pass anything, and each wrong
    # kind gets its own message. ``ordering_key``, if not None, replaces the declared key.
    if isinstance(event, DomainEvent):
        if payload is not None:
            raise TypeError(
                f"publish({type(event).__qualname__}(...), payload): a typed event carries its "
                f"own fields; pass a payload only with an event type string."
            )
        return _Prepared(
            event,
            event.event_type,
            event.version,
            encode_event(event, max_bytes),
            event.event_kind == "integration",
            _key(event, ordering_key),
        )
    if isinstance(event, str):
        # encode_payload() checks the payload is a dict and says so if not.
        event = NamedEvent(event_type=event, payload=payload if payload is not None else {})  # type: ignore[arg-type]
    elif not isinstance(event, NamedEvent):
        if isinstance(event, type) and issubclass(event, DomainEvent):
            raise TypeError(
                f"publish({event.__qualname__}): pass an instance, e.g. "
                f"publish({event.__qualname__}(...)), not the class."
            )
        raise TypeError(
            f"publish() takes a DomainEvent instance or an event type string, got "
            f"{type(event).__qualname__} {event!r:.60}."
        )
    elif payload is not None:
        raise TypeError("publish(NamedEvent(...), payload): the NamedEvent has its payload.")
    if not event.event_type or not isinstance(event.event_type, str):
        raise PayloadError(f"Event type must be a non-empty string, got {event.event_type!r}.")
    check_identifier(event.event_type, "The event type (event_type)")
    if WILDCARD in event.event_type:
        raise PayloadError(
            f"Event type {event.event_type!r}: '*' is kept for wildcard receivers "
            f"(@receiver('billing.*')); publish events under a name without it."
        )
    event_class = event_class_for(event.event_type)
    if event_class is not None:
        raise PayloadError(
            f"{event.event_type!r} is the event type of {event_class.__qualname__}; publish "
            f"{event_class.__qualname__}(...) instead of a plain payload."
        )
    data = encode_payload(event.event_type, event.payload, max_bytes)
    # Receivers get the payload as it will read back from JSON (tuples become lists).
    key = _key(event, ordering_key)
    named = NamedEvent(
        event_type=event.event_type,
        payload=decode_json(data),
        version=event.version,
        ordering_key=key,
    )
    return _Prepared(named, named.event_type, named.version, data, ordering_key=key)


def _key(event: DomainEvent | NamedEvent, override: Any) -> str:
    if override is not None:
        return check_key(override, event.event_type)
    if isinstance(event, NamedEvent):
        return key_of(event) if event.ordering_key else ""
    return key_of(event) if type(event).ordering_key is not None else ""


def _default_alias() -> str:
    # Asking the router costs more than the rest of a small publish when no router is set.
    if not router.routers:
        return DEFAULT_DB_ALIAS
    return router.db_for_write(OutboxEvent) or DEFAULT_DB_ALIAS


class _Rows:
    """The rows of one ``publish()`` or ``publish_many()`` call, handed to a
    ``collect_events()`` block instead of being written."""

    __slots__ = ("alias", "deliveries", "envelopes", "events", "ids", "owed")

    def __init__(
        self,
        alias: str,
        events: list[tuple[Any, ...]] | None = None,
        deliveries: list[tuple[Any, ...]] | None = None,
        owed: list[OwedDelivery] | None = None,
        envelopes: list[tuple[DomainEvent | NamedEvent, Envelope]] | None = None,
        ids: list[uuid.UUID] | None = None,
    ) -> None:
        self.alias = alias
        self.events = events if events is not None else []
        self.deliveries = deliveries if deliveries is not None else []
        self.owed = owed if owed is not None else []
        self.envelopes = envelopes if envelopes is not None else []
        self.ids = ids if ids is not None else []


def _write(
    prepared: Sequence[_Prepared],
    using: str | None,
    correlation_id: str | None,
    namespace: str = DEFAULT_NAMESPACE,
    debug: bool | None = None,
    due: dt.datetime | None = None,
) -> list[uuid.UUID]:
    # ``namespace`` chooses the receivers; ``debug``, if not None, overrides DOMAIN_EVENTS["DEBUG"]
    # for this call (an Emitter's or its namespace's switch); ``due`` (from due_of()) is when
    # every delivery is due, over the receivers' own delays.
    if correlation_id is not None:
        check_identifier(correlation_id, "correlation_id")
    if not tracing.enabled():
        return _write_rows(prepared, using, correlation_id, None, namespace, debug, due)
    with tracing.PublishSpan([item.event_type for item in prepared]) as span:
        return _write_rows(prepared, using, correlation_id, span, namespace, debug, due)


def due_of(
    deliver_at: dt.datetime | None, delay: dt.timedelta | None, where: str = "publish()"
) -> dt.datetime | None:
    """When ``publish(deliver_at=..., delay=...)`` makes its deliveries due (None: neither
    given), checked: ``ScheduleError`` before anything is written."""
    if deliver_at is None and delay is None:
        return None
    return due_time(deliver_at, delay, where=where)


def _write_rows(
    prepared: Sequence[_Prepared],
    using: str | None,
    correlation_id: str | None,
    span: tracing.PublishSpan | None,
    namespace: str = DEFAULT_NAMESPACE,
    debug: bool | None = None,
    due: dt.datetime | None = None,
) -> list[uuid.UUID]:
    headers = span.headers if span is not None else None
    if debug is None:
        debug = debug_logging.enabled()
    started = time.perf_counter() if debug else None
    alias = using or _default_alias()
    connection = connections[alias]
    if connection.vendor == "mysql" and connection.mysql_is_mariadb:  # type: ignore[attr-defined]
        for item in prepared:
            check_mariadb_depth(item.event_type, item.data)
    now = timezone.now()
    parent = current_envelope()
    causation_id = parent.event_id if parent is not None else None
    if correlation_id is None and parent is not None:
        correlation_id = parent.correlation_id
    # A use_dispatcher() block decides for every receiver; otherwise each receiver's own
    # dispatcher, then the setting.
    forced = _dispatcher_override.get()
    default_dispatcher = settings.DISPATCHER if forced is None else forced

    events: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    owed: list[OwedDelivery] = []
    envelopes: list[tuple[DomainEvent | NamedEvent, Envelope]] = []
    ids: list[uuid.UUID] = []
    pending, dispatched = DeliveryState.PENDING, DeliveryState.DISPATCHED
    scheduled = DeliveryState.SCHEDULED
    for item in prepared:
        event_id = uuid7()
        ids.append(event_id)
        correlation = correlation_id or str(event_id)
        events.append(
            (
                event_id,
                item.event_type,
                item.version,
                msgspec.Raw(item.data),
                now,
                correlation,
                causation_id,
                item.ordering_key,
                {} if headers is None else headers,
            )
        )
        envelope = Envelope(
            event_id=event_id,
            event_type=item.event_type,
            version=item.version,
            occurred_at=now,
            correlation_id=correlation,
            causation_id=causation_id,
            ordering_key=item.ordering_key,
        )
        envelopes.append((item.event, envelope))
        # An integration event reaches its receivers decoded from the stored row, never as the
        # object in memory: without the event, the delivery loads it from the outbox.
        handed_event = None if item.integration else item.event
        handed_envelope = None if item.integration else envelope
        for receiver in registry.receivers_for(item.event_type, namespace):
            delivery_id = uuid7()
            dispatcher = forced or receiver.dispatcher or default_dispatcher
            queue = receiver.queue or ""
            key = item.ordering_key and (item.ordering_key if is_ordered(receiver) else "")
            due_at = due
            if due_at is None and receiver.delay is not None:
                due_at = now + receiver.delay
            if due_at is not None and due_at > now:
                # Not handed over at commit: the relay takes it once due.
                deliveries.append(
                    (
                        delivery_id,
                        event_id,
                        receiver.name,
                        dispatcher,
                        queue,
                        scheduled,
                        due_at,
                        now,
                        None,
                        key,
                        "",
                        None,
                    )
                )
                continue
            handed_over = _dispatched_at_insert(dispatcher)
            deliveries.append(
                (
                    delivery_id,
                    event_id,
                    receiver.name,
                    dispatcher,
                    queue,
                    dispatched if handed_over else pending,
                    now,
                    now,
                    now if handed_over else None,
                    key,
                    str(delivery_id) if handed_over else "",
                    None,  # ordering_seq: numbered when written, if ``key``
                )
            )
            owed.append(
                OwedDelivery(
                    delivery_id=delivery_id,
                    receiver=receiver.name,
                    dispatcher=dispatcher,
                    queue=queue,
                    using=alias,
                    event=handed_event,
                    envelope=handed_envelope,
                    ordering_key=key,
                    headers=headers,
                )
            )

    if span is not None:
        span.record(events)
    collector = _collector.get()
    if collector is None:
        _commit(alias, events, deliveries, owed, envelopes, started)
        return ids
    collector.add(_Rows(alias, events, deliveries, owed, envelopes, ids))
    if started is not None:
        debug_logging.published(
            events, deliveries, alias, time.perf_counter() - started, collected=True
        )
    return ids


def _dispatched_at_insert(name: str) -> bool:
    """Whether deliveries for dispatcher ``name`` are written already dispatched."""
    try:
        return dispatchers[name].dispatched_at_insert
    except Exception:
        # An unknown name is check E003's to report; the dispatch at commit logs the error
        # and the deliveries stay pending.
        return False


def _commit(
    alias: str,
    events: list[tuple[Any, ...]],
    deliveries: list[tuple[Any, ...]],
    owed: list[OwedDelivery],
    envelopes: list[tuple[DomainEvent | NamedEvent, Envelope]],
    started: float | None = None,
) -> None:
    """Write the rows in the transaction open on ``alias`` (or one of their own), and have
    their deliveries dispatched when it commits. With ``started`` (debug logging on), log
    them once written, timed from then."""
    connection = connections[alias]
    if connection.in_atomic_block:
        _insert(connection, alias, events, deliveries, owed, envelopes, started)
    else:
        _outside_atomic(alias)
        with transaction.atomic(using=alias):
            _insert(connection, alias, events, deliveries, owed, envelopes, started)
    for capture in captures:
        for event, envelope in envelopes:
            capture(event, envelope)


def _outside_atomic(alias: str) -> None:
    """Warn or raise, as ``PUBLISH_OUTSIDE_ATOMIC`` says, for a publish outside ``atomic()``."""
    mode = settings.PUBLISH_OUTSIDE_ATOMIC
    if mode == "ignore":
        return
    message = (
        f"publish() was called outside transaction.atomic() on database {alias!r}: the event "
        f"commits on its own, not with the changes it reports. Publish inside the "
        f"transaction.atomic(using={alias!r}) block that makes those changes, or set "
        f'DOMAIN_EVENTS["PUBLISH_OUTSIDE_ATOMIC"] to "ignore".'
    )
    if mode == "raise":
        raise PublishOutsideAtomicError(message)
    # publish() is five frames up (_commit, _write_rows, _write, publish): name its caller.
    warnings.warn(PublishedOutsideAtomic(message), stacklevel=6)


def _insert(
    connection: BaseDatabaseWrapper,
    alias: str,
    events: list[tuple[Any, ...]],
    deliveries: list[tuple[Any, ...]],
    owed: list[OwedDelivery],
    envelopes: list[tuple[DomainEvent | NamedEvent, Envelope]],
    started: float | None,
) -> None:
    batch = batch_for(connection, alias)
    try:
        if registry.has_once_receivers:
            deliveries, owed = once_claims.keep_claimed(alias, deliveries, owed)
        # The rows, not ``owed``: a scheduled delivery takes its place in its line too.
        if any(row[_ORDERING_KEY] for row in deliveries):
            sequencing.sequence(connection, alias, deliveries, owed)
        notify = batch.relay_channel(connection, owed)
        writer_for(connection).write(events, deliveries, notify=notify)
    except BaseException:
        # An event must never commit without its deliveries: if the caller catches this error
        # and carries on, Django refuses to commit the transaction instead.
        transaction.set_rollback(True, using=alias)
        raise
    if started is not None:
        debug_logging.published(events, deliveries, alias, time.perf_counter() - started)
    batch.owed.extend(owed)
    batch.envelopes.extend(envelopes)


def publish(
    event: DomainEvent | NamedEvent | str,
    payload: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    correlation_id: str | None = None,
    ordering_key: str | None = None,
    deliver_at: dt.datetime | None = None,
    delay: dt.timedelta | None = None,
) -> uuid.UUID:
    """Record ``event`` in the outbox, with one delivery per receiver, and return its id.

    Call it inside the transaction whose outcome the event reports: the rows commit or roll
    back with it, and the deliveries are dispatched once it commits. Outside a transaction it
    runs in one of its own. ``event`` is a ``DomainEvent`` instance, or an event type string
    with a JSON ``payload`` dict. ``ordering_key`` replaces the key the event declares (see
    the Ordering page). ``deliver_at`` (an aware datetime) or ``delay`` (a timedelta) makes
    every delivery due then: ``scheduled`` until the relay runs it. Bad payloads raise
    ``PayloadError``, bad due times ``ScheduleError``, before anything is written.
    """
    prepared = _prepare(event, payload, settings.MAX_PAYLOAD_BYTES, ordering_key)
    due = due_of(deliver_at, delay)
    return _write([prepared], using, correlation_id, due=due)[0]


def publish_many(
    events: Iterable[DomainEvent | NamedEvent],
    *,
    using: str | None = None,
    correlation_id: str | None = None,
    deliver_at: dt.datetime | None = None,
    delay: dt.timedelta | None = None,
) -> list[uuid.UUID]:
    """Publish several events with one bulk insert for the events and one for the deliveries.

    Every event is validated before anything is written; the ids come back in order.
    ``deliver_at`` or ``delay`` schedules every delivery, as for ``publish()``.
    """
    max_bytes = settings.MAX_PAYLOAD_BYTES
    prepared = [_prepare(event, None, max_bytes) for event in events]
    due = due_of(deliver_at, delay, "publish_many()")
    if not prepared:
        return []
    return _write(prepared, using, correlation_id, due=due)


async def apublish(
    event: DomainEvent | NamedEvent | str,
    payload: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    correlation_id: str | None = None,
    ordering_key: str | None = None,
    deliver_at: dt.datetime | None = None,
    delay: dt.timedelta | None = None,
) -> uuid.UUID:
    """``publish()`` for async code: runs it in Django's thread for synchronous database work."""
    return await sync_to_async(publish)(
        event,
        payload,
        using=using,
        correlation_id=correlation_id,
        ordering_key=ordering_key,
        deliver_at=deliver_at,
        delay=delay,
    )
