"""A delivery's attempt history: one ``DeliveryAttempt`` row per failed run of its receiver.

Only failures are recorded, in the transaction that records the failure on the delivery, so
the history and the delivery's state never disagree and a successful run costs nothing more.
Each delivery keeps its newest ``DOMAIN_EVENTS["ATTEMPT_HISTORY"]`` attempts; older ones are
deleted in the same transaction. A run ended by a lost database connection is not an attempt
and is not recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django_domain_events.conf import settings
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.exceptions import ReceiverTimedOut
from django_domain_events.models import AttemptOutcome, DeliveryAttempt

_task_id: ContextVar[str] = ContextVar("django_domain_events_task_id", default="")


@contextmanager
def running_in_task(task_id: str | None) -> Iterator[None]:
    """Record the attempts made in the block as run by the queue task ``task_id``."""
    token = _task_id.set(task_id or "")
    try:
        yield
    finally:
        _task_id.reset(token)


def worker_name() -> str:
    """This process as a history shows it: host and process id."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}"


def record_failure(
    owed: OwedDelivery,
    attempt: int,
    started_at: dt.datetime,
    ended_at: dt.datetime,
    exc: BaseException | None,
    error: str,
    traceback: str,
) -> None:
    """Add a failed attempt to the history of ``owed`` and drop what falls past the bound.

    Call it inside the transaction that records the failure on the delivery."""
    keep = settings.ATTEMPT_HISTORY
    if keep <= 0:
        return
    history = DeliveryAttempt.objects.using(owed.using)
    history.create(
        delivery_id=owed.delivery_id,
        attempt=attempt,
        outcome=(
            AttemptOutcome.TIMED_OUT if isinstance(exc, ReceiverTimedOut) else AttemptOutcome.FAILED
        ),
        started_at=started_at,
        duration=max(ended_at - started_at, dt.timedelta(0)),
        error=error[:10_000],
        traceback=traceback,
        worker=worker_name(),
        task_id=_task_id.get()[:255],
    )
    mine = history.filter(delivery_id=owed.delivery_id)
    # The newest beyond the bound, by the time-ordered ids: it and all older go.
    oldest_dropped = mine.order_by("-id").values_list("id", flat=True)[keep : keep + 1]
    found = list(oldest_dropped)
    if found:
        mine.filter(id__lte=found[0]).delete()
