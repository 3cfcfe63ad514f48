"""The ``django.tasks`` task that runs one delivery: ``deliver``.

Importing this module imports ``django.tasks`` (Django 6+); nothing else in the package imports
it unless the ``"tasks"`` dispatcher is used.

The delivery row is the truth, not the task. A task whose worker was killed mid-receiver is left
``RUNNING`` by the database backend and never run again; the receiver's transaction rolled back
with the worker's connection, so the delivery stays ``dispatched`` and the relay sends it again
once ``DISPATCH_TIMEOUT`` has passed. Two copies of one task cannot both run its receiver:
``run_stored_delivery()`` claims the row with a conditional UPDATE in the receiver's
transaction, and the second copy waits for that row lock, then finds the delivery settled. A
failed attempt is recorded with its next attempt's time; the relay sends that attempt when it
is due.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.tasks import task

from django_domain_events.conf import settings
from django_domain_events.delivery.runner import MISSING, run_stored_delivery, why_nothing_ran

logger = logging.getLogger("django_domain_events")


@task(backend=settings.TASKS_BACKEND)
def deliver(delivery_id: str, using: str = DEFAULT_DB_ALIAS) -> str:
    """Run the delivery ``delivery_id`` of database ``using``; return its outcome's value.

    Input that names no runnable delivery (a malformed or unknown id, a deleted row, a settled
    delivery) is logged and returns without running anything.
    """
    pk = _delivery_pk(delivery_id)
    if pk is None or not isinstance(using, str) or using not in connections.settings:
        logger.error(
            "Task %s got (%r, %r), which is not a delivery id and a database alias; dropped",
            deliver.module_path,
            delivery_id,
            using,
        )
        return MISSING
    # The claim reads the delivery with its event (one statement on PostgreSQL).
    outcome, owed = run_stored_delivery(pk, using)
    if owed is not None:
        return outcome.value
    return why_nothing_ran(pk, using, "its task")


def _delivery_pk(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return None
