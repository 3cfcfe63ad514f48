"""The Celery task that runs one delivery: ``django_domain_events.deliver``.

The project's Celery app finds it with ``app.autodiscover_tasks()``. Importing this module imports
Celery; nothing else in the package imports it unless the Celery dispatcher is used.

The task is acknowledged after it returns and rejected (so redelivered) when its worker process
dies, so a worker killed mid-receiver loses nothing. Two copies of one delivery cannot both run
its receiver: ``run_stored_delivery()`` claims the row with a conditional UPDATE in the
receiver's transaction, and the second copy waits for that row lock, then finds the delivery
settled.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from celery import Task, shared_task
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.utils import timezone

from django_domain_events.conf import settings
from django_domain_events.delivery.attempts import running_in_task
from django_domain_events.delivery.runner import (
    MISSING,
    Outcome,
    run_stored_delivery,
    why_nothing_ran,
)
from django_domain_events.dispatchers import dispatchers
from django_domain_events.dispatchers.base import OwedDelivery
from django_domain_events.dispatchers.celery.dispatcher import TASK_NAME, CeleryDispatcher
from django_domain_events.exceptions import DispatcherError
from django_domain_events.models import Delivery, DeliveryState

logger = logging.getLogger("django_domain_events")


@shared_task(
    name=TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The dispatcher asks for results per message, only when they land in django-celery-results.
    ignore_result=True,
)
def deliver(self: Task, delivery_id: str, using: str = DEFAULT_DB_ALIAS) -> str:
    """Run the delivery ``delivery_id`` of database ``using``; return its outcome's value.

    Input that names no runnable delivery (a malformed or unknown id, a deleted row, a settled
    delivery) is logged and acknowledged, never retried. After a failed attempt whose retry is
    due within ``DOMAIN_EVENTS["CELERY_MAX_RETRY_DELAY"]`` seconds, the task sends the next
    attempt with that countdown; a later retry is left to the relay.
    """
    pk = _delivery_pk(delivery_id, using, self.request.id)
    if pk is None:
        return MISSING
    with running_in_task(self.request.id):
        outcome, owed = _run(pk, using)
    if owed is None:
        return why_nothing_ran(pk, using, f"task {self.request.id}")
    if outcome is Outcome.FAILED:
        _schedule_retry(owed)
    return outcome.value


def _delivery_pk(delivery_id: Any, using: Any, task_id: str | None) -> uuid.UUID | None:
    """The delivery id the task names, or None (logged) when its input names no delivery."""
    try:
        pk = uuid.UUID(delivery_id)
    except (TypeError, ValueError, AttributeError):
        pk = None
    if pk is None or not isinstance(using, str) or using not in connections.settings:
        logger.error(
            "Task %s [%s] got (%r, %r), which is not a delivery id and a database alias; dropped",
            TASK_NAME,
            task_id,
            delivery_id,
            using,
        )
        return None
    return pk


def _run(pk: uuid.UUID, using: str) -> tuple[Outcome, OwedDelivery | None]:
    # The claim reads the delivery with its event, in the receiver's transaction: on
    # PostgreSQL one statement between BEGIN and COMMIT.
    try:
        return run_stored_delivery(pk, using)
    except (InterfaceError, OperationalError):
        connection = connections[using]
        if connection.in_atomic_block:
            raise
        # A connection kept between tasks (CELERY_DB_REUSE_MAX) may have been closed by the
        # server since the last one: reconnect once before giving up on the task. Nothing was
        # claimed or run: the error came before the claim.
        connection.close()
        return run_stored_delivery(pk, using)


def _schedule_retry(owed: OwedDelivery) -> None:
    found = (
        Delivery.objects.using(owed.using)
        .filter(pk=owed.delivery_id, state=DeliveryState.FAILED)
        .values_list("attempts", "next_attempt_at")
        .first()
    )
    if found is None:
        return  # not waiting for a retry: recorded as something else, or not recorded at all
    attempts, retry_at = found
    if retry_at is None:
        return
    delay = (retry_at - timezone.now()).total_seconds()
    if delay > settings.CELERY_MAX_RETRY_DELAY:
        # A long countdown would sit unacknowledged in a worker, and Redis hands messages
        # unacknowledged longer than its visibility timeout to another worker: a duplicate.
        logger.info(
            "Delivery %s: next attempt at %s, more than CELERY_MAX_RETRY_DELAY away; left "
            "to the relay",
            owed.delivery_id,
            retry_at.isoformat(),
        )
        return
    from django_domain_events.delivery.relay import declared_dispatchers

    if owed.dispatcher not in declared_dispatchers():
        # A name read from the row is never imported: the relay makes such a delivery dead.
        logger.error(
            "Delivery %s names dispatcher %r, which nothing in this project declares; its "
            "retry is left to the relay",
            owed.delivery_id,
            owed.dispatcher,
        )
        return
    try:
        dispatcher = dispatchers[owed.dispatcher]
    except DispatcherError:
        logger.exception("Delivery %s: its retry is left to the relay", owed.delivery_id)
        return
    if isinstance(dispatcher, CeleryDispatcher):
        # The failure was just recorded with this attempt count: only that state is marked
        # dispatched, in case another copy has moved the delivery on since.
        dispatcher.send([replace(owed, attempts=attempts)], countdown=max(delay, 0.0))


RELAY_TASK_NAME = "django_domain_events.relay"
"""Name of the periodic task that runs the relay (``django_domain_events.tasks.relay``)."""


@shared_task(name=RELAY_TASK_NAME, ignore_result=True)
def relay(using: str | None = None, max_seconds: float = 50.0) -> dict[str, int]:
    """Dispatch what is owed now, as ``manage.py relay_events --once`` does; for Celery beat.

    It returns after at most about ``max_seconds`` (the batch in hand is finished), so keep it
    below the beat interval. Runs that overlap, from two beats or a slow one, are safe on
    databases with ``SKIP LOCKED``: each claims its own deliveries. Returns the totals.
    """
    import time

    from django_domain_events.delivery.relay import Relay

    found = Relay(using=using).run_pass(deadline=time.monotonic() + max_seconds)
    if found.claimed:
        logger.info("Relay task: %s", found)
    return found.as_dict()
