"""A run ended by a lost database connection: the infrastructure's fault, not the receiver's.

When the connection a delivery runs on dies under it (the server restarted, the backend was
terminated, the network dropped), the receiver's transaction is gone with it, claim included.
Such a run is not counted as one of the receiver's attempts: the delivery goes back to
``failed`` with its attempts unchanged and a short wait, on a fresh connection. Only
``MAX_IN_A_ROW`` such runs in a row are forgiven, in one process: a receiver that breaks its
own connection every time still spends its attempts and ends dead.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import OrderedDict
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone

from django_domain_events.declaration.registry import Receiver
from django_domain_events.declaration.retry import policy_for
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.models import RUNNABLE_STATES, Delivery, DeliveryState

logger = logging.getLogger("django_domain_events")

MAX_IN_A_ROW = 3
"""Runs of one delivery in a row that a lost connection may end without spending an attempt;
the next one counts."""

_REMEMBERED = 10_000
"""Deliveries whose lost runs one process remembers (the oldest are forgotten first)."""

_in_a_row: OrderedDict[uuid.UUID, int] = OrderedDict()


def opened(using: str) -> Any:
    """The connection to ``using`` a run starts on, connecting if need be (as the run's
    transaction would), to tell afterwards whether the run lost it."""
    connection = connections[using]
    if connection.connection is None:
        connection.ensure_connection()
    return connection.connection


def lost_connection(exc: BaseException, using: str, started_on: Any) -> bool:
    """Whether ``exc`` ended the run because the connection it ``started_on`` is gone, rather
    than because of anything the receiver did: a database error after which that connection
    was dropped (Django reconnects when it leaves the transaction) or is unusable. Never
    inside a transaction of the caller's, which the lost connection took with it."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    connection = connections[using]
    if connection.in_atomic_block:
        return False
    return (
        started_on is None or connection.connection is not started_on or not connection.is_usable()
    )


def forgiven(owed: OwedDelivery) -> bool:
    """Count one more lost run of ``owed``; whether it is still to be forgiven (not counted
    as an attempt)."""
    count = _in_a_row.pop(owed.delivery_id, 0) + 1
    if count > MAX_IN_A_ROW:
        return False
    _in_a_row[owed.delivery_id] = count
    while len(_in_a_row) > _REMEMBERED:
        _in_a_row.popitem(last=False)
    return True


def forget(owed: OwedDelivery) -> None:
    """Start counting ``owed``'s lost runs from zero again (its run ended another way)."""
    _in_a_row.pop(owed.delivery_id, None)


def release(
    owed: OwedDelivery, receiver: Receiver, attempts: int, exc: BaseException
) -> dt.datetime | None:
    """Reconnect, and put ``owed`` back to ``failed`` with ``attempts`` unchanged, due again
    after a short backoff; return when, or None if that could not be recorded (it then stays
    claimed, and the relay runs it once the claim lapses)."""
    connection = connections[owed.using]
    connection.close()
    count = _in_a_row.get(owed.delivery_id, 1)
    now = timezone.now()
    retry_at = now + dt.timedelta(seconds=policy_for(receiver).delay(count))
    reason = (
        f"The database connection was lost while the receiver ran ({type(exc).__qualname__}: "
        f"{exc}); not counted as an attempt ({count} of {MAX_IN_A_ROW} forgiven in a row)."
    )
    try:
        Delivery.objects.using(owed.using).filter(
            pk=owed.delivery_id, state__in=RUNNABLE_STATES
        ).update(
            state=DeliveryState.FAILED,
            attempts=attempts,
            next_attempt_at=retry_at,
            last_error=reason[:10_000],
            claimed_by="",
            claimed_until=None,
        )
    except Exception:
        connection.close()
        logger.exception(
            "Delivery %s to %s lost its database connection and could not be put back; it "
            "stays claimed until its claim lapses",
            owed.delivery_id,
            owed.receiver,
        )
        return None
    logger.warning(
        "Delivery %s to %s lost its database connection (%s); not counted as an attempt, "
        "retry at %s",
        owed.delivery_id,
        owed.receiver,
        exc,
        retry_at.isoformat(),
    )
    return retry_at
