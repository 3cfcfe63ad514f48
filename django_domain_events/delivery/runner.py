"""Running one delivery: claim it, call its receiver, and record the outcome.

The claim is a conditional UPDATE that marks the delivery delivered, made in the same
transaction as the receiver's work. It takes the row's write lock, so a second copy of the same
delivery waits, then finds nothing to claim; and if the receiver raises, the rollback undoes
both its work and the mark. A receiver's effects in this database and its "delivered" mark
therefore commit together, once.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time
import traceback as tb
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.utils import timezone

from django_domain_events import signals
from django_domain_events.declaration.envelope import (
    Envelope,
    reset_current_envelope,
    set_current_envelope,
)
from django_domain_events.declaration.events import DomainEvent, NamedEvent
from django_domain_events.declaration.registry import (
    Receiver,
    registry,
    skips_dead,
    time_limit_for,
)
from django_domain_events.declaration.retry import policy_for
from django_domain_events.declaration.sensitivity import scrub, sensitive_values
from django_domain_events.delivery import attempts, lost_connections, ordering, time_limit
from django_domain_events.delivery.loading import (
    StoredEvent,
    decode_stored,
    load_headers,
    not_received,
    receives,
)
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.exceptions import DomainEventsError, GiveUp, NotYet, RetryAfter
from django_domain_events.models import RUNNABLE_STATES, Delivery, DeliveryState
from django_domain_events.observability import debug_logging, metrics, tracing
from django_domain_events.statements import claim, claim_load, delivery_load

logger = logging.getLogger("django_domain_events")


class Outcome(enum.Enum):
    """What running a delivery came to."""

    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    SKIPPED = "skipped"
    """Nothing to do: already delivered, dead, cancelled, scheduled, or run by another copy."""
    SCHEDULED = "scheduled"
    """The receiver said ``NotYet``: scheduled again, no attempt spent."""


class _Undeliverable(Exception):
    pass


class _Unregistered(Exception):
    """A delivery claimed by id names no registered receiver: its claim is rolled back."""


def call_receiver(receiver: Receiver, event: DomainEvent | NamedEvent, envelope: Envelope) -> None:
    """Call the receiver's function with the event (and envelope, if it asks for it), running
    ``async def`` receivers to completion from this synchronous context. A run longer than
    the receiver's time limit raises ``ReceiverTimedOut`` where it can be interrupted (see
    ``time_limit``)."""
    kwargs: dict[str, Any] = {"envelope": envelope} if receiver.takes_envelope else {}
    if receiver.dry_run:
        # A receiver that can be previewed is told this run is the real one.
        kwargs["commit"] = True
    limit = time_limit_for(receiver)
    token = set_current_envelope(envelope)
    try:
        if receiver.is_async:
            async_to_sync(time_limit.awaited_within)(
                limit, receiver.name, receiver.func(event, **kwargs)
            )
        else:
            with time_limit.interrupting_after(limit, receiver.name):
                receiver.func(event, **kwargs)
    finally:
        reset_current_envelope(token)


def delivery_envelope(
    owed: OwedDelivery, envelope: Envelope, receiver: Receiver, attempt: int
) -> Envelope:
    """The event's envelope as this delivery's receiver gets it: with the delivery, the
    receiver's name and the attempt."""
    return Envelope(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        version=envelope.version,
        occurred_at=envelope.occurred_at,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        delivery_id=owed.delivery_id,
        receiver=receiver.name,
        attempt=attempt,
        ordering_key=envelope.ordering_key,
    )


def run_receiver(
    owed: OwedDelivery,
    receiver: Receiver,
    event: DomainEvent | NamedEvent,
    envelope: Envelope,
    headers: Mapping[str, Any] | None,
) -> None:
    """Call the receiver for a claimed delivery, in the claim's transaction: bound the
    transaction's idle time by its time limit, count it started and trace it where enabled."""
    if not receiver.is_async:
        time_limit.bound_idle_transaction(owed.using, time_limit_for(receiver))
    if metrics.enabled():
        metrics.receiver_started(owed, envelope.occurred_at)
    if tracing.enabled():
        if headers is None:
            # Handed over without them, by a dispatcher of the project's own, say.
            headers = load_headers(owed.using, envelope.event_id)
        with tracing.ReceiverSpan(owed, envelope, headers):
            call_receiver(receiver, event, envelope)
    else:
        call_receiver(receiver, event, envelope)


def _claim(owed: OwedDelivery, now: dt.datetime) -> tuple[int, int | None] | None:
    """Mark the delivery delivered if it is still runnable. Return None if this call did not,
    else the attempt it starts (its count of attempts after the mark) and its ordering
    sequence number where the database can return them from the UPDATE, or (0, None) where it
    cannot."""
    statement = claim(connections[owed.using])
    with statement.connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.params(owed.delivery_id, now))
        if not statement.returns:
            return (0, None) if cursor.rowcount else None
        row = cursor.fetchone()
        return None if row is None else (int(row[0]), row[1])


def _claim_and_load(
    owed: OwedDelivery, now: dt.datetime
) -> tuple[OwedDelivery, int, int | None, list[Any]] | None:
    """Mark the delivery delivered if it is still runnable, and read its row with its event's:
    in one statement where the database can (``statements.claim_load``), else the claim, then
    the load. Return None if this call did not mark it, else the delivery as its row has it
    (``attempts``: those made before this run), the attempt this run starts, its ordering
    sequence number and its event's ``EVENT_COLUMNS`` values, still to decode."""
    statement = claim_load(connections[owed.using])
    if statement.sql is not None:
        values = statement.fetch(owed.delivery_id, now)
        if values is None:
            return None
        receiver, dispatcher, queue, attempts, key, seq, *stored = values
    else:
        claimed = _claim(owed, now)
        if claimed is None:
            return None
        values = delivery_load(statement.connection).fetch(owed.delivery_id)
        if values is None:
            raise _Undeliverable(f"Delivery {owed.delivery_id} has no row in the outbox any more")
        # Read after the claim, in its transaction: the attempts include this run's.
        receiver, dispatcher, queue, _, attempts, key, *stored = values
        seq = claimed[1]
    row = replace(
        owed,
        receiver=receiver,
        dispatcher=dispatcher,
        queue=queue,
        attempts=attempts - 1,
        ordering_key=key,
    )
    return row, int(attempts), seq, stored


def _decoded(owed: OwedDelivery, stored: list[Any]) -> StoredEvent:
    # A row that cannot be delivered is made dead, its claim's attempt counted.
    try:
        event, envelope, headers = decode_stored(stored)
    except DomainEventsError as exc:
        raise _Undeliverable(str(exc)) from exc
    if not receives(owed.receiver, envelope.event_type):
        error = not_received(owed.receiver, envelope.event_type)
        raise _Undeliverable(str(error)) from error
    return event, envelope, headers


_Ran = tuple[Outcome, OwedDelivery | None]
"""What running a delivery came to, and the delivery its settling released (ordering)."""


def run_delivery(owed: OwedDelivery) -> Outcome:
    """Run one delivery to its outcome. Never raises for a receiver's failure.

    Database errors while recording the outcome are logged; the delivery then stays owed and
    the relay runs it again. If settling it releases the next delivery of its ordering key,
    that one is handed to its dispatcher once the settling has committed.
    """
    outcome, released = _run_measured(owed)
    hand_over_released(released)
    return outcome


def hand_over_released(released: OwedDelivery | None) -> None:
    """Dispatch a delivery that settling another released (see ``ordering``), after that
    settling has committed; run it here if its dispatcher is ``"sync"``, and so on down the
    line."""
    while released is not None:
        released = _hand_over(released)


def run_stored_delivery(delivery_id: uuid.UUID, using: str) -> tuple[Outcome, OwedDelivery | None]:
    """Run the delivery ``delivery_id`` of database ``using`` knowing only its id, as a queue's
    task does: its claim reads its row and its event (one statement on PostgreSQL). Return
    the outcome and the delivery as its row had it; ``SKIPPED`` and None when there was
    nothing to claim (settled, run by another copy, waiting in its line, or no such row).

    A database error before the claim (a connection the server has closed since) is raised,
    nothing having run or been recorded: the caller may reconnect and call again."""
    started = time.perf_counter()
    (outcome, released), owed = _run(OwedDelivery(delivery_id, "", "", "", using), None)
    if owed is not None:
        _measured(owed, outcome, started)
    hand_over_released(released)
    return outcome, owed


MISSING = "missing"
"""What a task that runs a delivery by id returns when there is no delivery to run (bad input,
or the row is gone)."""


def why_nothing_ran(delivery_id: uuid.UUID, using: str, task: str) -> str:
    """What a queue's task (``task`` names it in the log) returns when
    ``run_stored_delivery()`` claimed nothing, logged: ``MISSING`` if the row is gone, else
    ``SKIPPED``'s value (settled, taken by another copy, or waiting for an earlier delivery of
    its ordering key). Rare, so the one more query that tells which is no cost."""
    state = (
        Delivery.objects.using(using).filter(pk=delivery_id).values_list("state", flat=True).first()
    )
    if state is None:
        logger.warning(
            "Delivery %s not found in database %r (its event was pruned?); %s dropped",
            delivery_id,
            using,
            task,
        )
        return MISSING
    logger.info("Delivery %s is %s; %s has nothing to run", delivery_id, state, task)
    return Outcome.SKIPPED.value


def _run_measured(owed: OwedDelivery) -> _Ran:
    started = time.perf_counter()
    outcome, released = _run_delivery(owed)
    _measured(owed, outcome, started)
    return outcome, released


def _measured(owed: OwedDelivery, outcome: Outcome, started: float) -> None:
    debug, measured = debug_logging.enabled(), metrics.enabled()
    if not (debug or measured):
        return
    seconds = time.perf_counter() - started
    if debug:
        debug_logging.delivered(owed, outcome.value, owed.attempts + 1, seconds)
    if measured:
        metrics.delivered(owed, outcome.value, seconds)


def _hand_over(released: OwedDelivery) -> OwedDelivery | None:
    # A released delivery for the synchronous dispatcher runs here and now, and what it
    # releases in turn comes back: a loop in run_delivery(), not recursion, however long the
    # line that was waiting. Any other dispatcher is handed it, as after a publish.
    try:
        dispatcher = dispatchers[released.dispatcher]
        if dispatcher.runs_inline:
            return _run_measured(released)[1]
        dispatcher.dispatch([released])
    except Exception:
        logger.exception(
            "Delivery %s, next in line for its ordering key, could not be dispatched; it "
            "stays owed and the relay dispatches it",
            released.delivery_id,
        )
    return None


def _run_delivery(owed: OwedDelivery) -> _Ran:
    receiver = registry.get(owed.receiver)
    if receiver is None:
        return _unregistered(owed)
    return _run(owed, receiver)[0]


def _unregistered(owed: OwedDelivery) -> _Ran:
    # The in-house backend's API keeps subscriptions pending until init_event_backend():
    # a process that never calls it is misconfigured, and its deliveries wait for the fix.
    from django_domain_events.compat.backend import unregistered_subscription

    pending = unregistered_subscription(owed.receiver)
    if pending is not None:
        logger.error("Delivery %s: %s", owed.delivery_id, pending)
        return _settle_failure(
            owed,
            None,
            owed.attempts + 1,
            None,
            reason=pending,
            envelope=owed.envelope,
            event=owed.event,
        )
    reason = (
        f"No receiver named {owed.receiver!r} is registered (renamed or removed?). "
        f"Restore it, or replay the event to the receivers that exist now."
    )
    return _settle_failure(
        owed,
        None,
        owed.attempts,
        None,
        reason=reason,
        dead=True,
        envelope=owed.envelope,
        event=owed.event,
    )


def _run(owed: OwedDelivery, receiver: Receiver | None) -> tuple[_Ran, OwedDelivery | None]:
    # With receiver None, ``owed`` is only an id: the claim reads the rest of its row. Returns
    # what the run came to, and the delivery as run (None if nothing was claimed by id).
    now = timezone.now()
    attempt = owed.attempts + 1
    event, envelope, headers = owed.event, owed.envelope, owed.headers
    released = started_on = None
    try:
        started_on = lost_connections.opened(owed.using)
        with transaction.atomic(using=owed.using):
            if event is None or envelope is None:
                found = _claim_and_load(owed, now)
                if found is None:
                    return _nothing_to_run(owed), None if receiver is None else owed
                row, attempt, seq, stored = found
                if receiver is None:
                    owed, receiver = row, registry.get(row.receiver)
                    if receiver is None:
                        raise _Unregistered
                event, envelope, headers = _decoded(owed, stored)
            else:
                assert receiver is not None  # a run by id never has its event yet
                claimed = _claim(owed, now)
                if claimed is None:
                    return _nothing_to_run(owed), owed
                attempt, seq = claimed[0] or attempt, claimed[1]
            envelope = delivery_envelope(owed, envelope, receiver, attempt)
            run_receiver(owed, receiver, event, envelope, headers)
            if owed.ordering_key:
                released = ordering.release_next(owed, seq)
    except _Unregistered:
        # The rollback undid the claim: settled as a delivery whose receiver is unknown.
        return _unregistered(owed), owed
    except _Undeliverable as exc:
        ran = _settle_failure(
            owed, receiver, attempt, exc.__cause__, reason=str(exc), dead=True, started_at=now
        )
        return ran, None if receiver is None else owed
    except NotYet as exc:
        lost_connections.forget(owed)
        return (_schedule_again(owed, exc), None), owed
    except Exception as exc:
        if receiver is None:
            raise  # before the claim of a run by id: nothing ran, nothing to record it on
        lost = lost_connections.lost_connection(exc, owed.using, started_on)
        if lost and lost_connections.forgiven(owed):
            return (_release_lost(owed, receiver, attempt - 1, exc), None), owed
        lost_connections.forget(owed)
        failure = time_limit.explained(exc, receiver.name, time_limit_for(receiver))
        return _settle_failure(
            owed, receiver, attempt, failure, envelope=envelope, event=event, started_at=now
        ), owed
    lost_connections.forget(owed)
    signals.send(
        signals.delivery_succeeded,
        sender=type(event),
        event=event,
        envelope=envelope,
        receiver=receiver,
        using=owed.using,
    )
    return (Outcome.DELIVERED, released), owed


def _nothing_to_run(owed: OwedDelivery) -> _Ran:
    logger.debug("Delivery %s: nothing to run (settled or taken)", owed.delivery_id)
    return Outcome.SKIPPED, None


def _schedule_again(owed: OwedDelivery, answer: NotYet) -> Outcome:
    # The rollback undid the claim and its attempt; the delivery waits for its new due time,
    # which the relay keeps, and its ordering line, if any, waits with it.
    try:
        updated = (
            Delivery.objects.using(owed.using)
            .filter(pk=owed.delivery_id, state__in=RUNNABLE_STATES)
            .update(
                state=DeliveryState.SCHEDULED,
                next_attempt_at=answer.at,
                claimed_by="",
                claimed_until=None,
            )
        )
    except Exception:
        logger.exception(
            "Delivery %s to %s answered NotYet and could not be scheduled again; it stays owed",
            owed.delivery_id,
            owed.receiver,
        )
        return Outcome.FAILED
    if not updated:
        return Outcome.SKIPPED
    logger.info(
        "Delivery %s to %s: not yet, due again at %s%s",
        owed.delivery_id,
        owed.receiver,
        answer.at.isoformat(),
        f" ({answer.reason})" if answer.reason else "",
    )
    return Outcome.SCHEDULED


def _release_lost(
    owed: OwedDelivery, receiver: Receiver, attempts: int, exc: BaseException
) -> Outcome:
    # The connection died under the run: its transaction, claim included, is gone with it.
    # The delivery is retried soon without spending one of the receiver's attempts.
    lost_connections.release(owed, receiver, attempts, exc)
    if metrics.enabled():
        metrics.lost_connection(owed)
    return Outcome.FAILED


def _settle_failure(
    owed: OwedDelivery,
    receiver: Receiver | None,
    attempt: int,
    exc: BaseException | None,
    *,
    reason: str = "",
    dead: bool = False,
    envelope: Envelope | None = None,
    event: DomainEvent | NamedEvent | None = None,
    started_at: dt.datetime | None = None,
) -> _Ran:
    # started_at: when the failed run began; None when the receiver never ran (no attempt).
    now = timezone.now()
    policy = policy_for(receiver)
    dead = dead or isinstance(exc, GiveUp) or policy.exhausted(attempt)
    retry_at = None
    if not dead:
        delay = exc.seconds if isinstance(exc, RetryAfter) else policy.delay(attempt)
        retry_at = now + dt.timedelta(seconds=delay)
    if exc is not None and not reason:
        reason = f"{type(exc).__qualname__}: {exc}"
    trace = "".join(tb.format_exception(exc)) if exc is not None else ""
    hidden = sensitive_values(event)
    if hidden:
        reason, trace = scrub(reason, hidden), scrub(trace, hidden)
    released = None
    try:
        with transaction.atomic(using=owed.using):
            updated = (
                Delivery.objects.using(owed.using)
                .filter(pk=owed.delivery_id, state__in=RUNNABLE_STATES)
                .update(
                    state=DeliveryState.DEAD if dead else DeliveryState.FAILED,
                    attempts=attempt,
                    last_attempt_at=now,
                    next_attempt_at=retry_at,
                    last_error=reason[:10_000],
                    traceback=trace,
                    claimed_by="",
                    claimed_until=None,
                )
            )
            if updated and started_at is not None:
                attempts.record_failure(owed, attempt, started_at, now, exc, reason, trace)
            if updated and dead and owed.ordering_key and skips_dead(receiver):
                released = ordering.release_next(owed)
    except Exception:
        logger.exception(
            "Delivery %s to %s failed and its failure could not be recorded; it stays owed",
            owed.delivery_id,
            owed.receiver,
        )
        return Outcome.FAILED, None
    if not updated:
        return Outcome.SKIPPED, None
    told: dict[str, Any] = {
        "sender": type(event) if event is not None else NamedEvent,
        "event": event,
        "envelope": envelope,
        "receiver": receiver,
        "using": owed.using,
        "exception": exc,
    }
    if dead:
        shown = exc if isinstance(exc, Exception) and not isinstance(exc, GiveUp) else None
        if shown is not None and hidden:
            # exc_info would format the exception as raised, sensitive values and all.
            logger.error(
                "Delivery %s to %s is dead after %d attempt(s): %s\n%s",
                owed.delivery_id,
                owed.receiver,
                attempt,
                reason,
                trace.rstrip(),
            )
        else:
            logger.error(
                "Delivery %s to %s is dead after %d attempt(s): %s",
                owed.delivery_id,
                owed.receiver,
                attempt,
                reason,
                exc_info=shown,
            )
        signals.send(signals.delivery_dead, **told, reason=reason)
        return Outcome.DEAD, released
    logger.warning(
        "Delivery %s to %s failed (attempt %d), retry at %s: %s",
        owed.delivery_id,
        owed.receiver,
        attempt,
        retry_at.isoformat() if retry_at else "-",
        reason,
    )
    signals.send(signals.delivery_failed, **told, retry_at=retry_at)
    return Outcome.FAILED, None


def owed_delivery(delivery: Delivery, using: str) -> OwedDelivery:
    """An ``OwedDelivery`` for a row loaded from the outbox (event loaded when run)."""
    return OwedDelivery(
        delivery_id=delivery.pk,
        receiver=delivery.receiver,
        dispatcher=delivery.dispatcher,
        queue=delivery.queue,
        using=using,
        attempts=delivery.attempts,
        ordering_key=delivery.ordering_key,
    )
