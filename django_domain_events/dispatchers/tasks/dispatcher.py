"""The ``django.tasks`` dispatcher: after commit, one task per delivery, carrying only its id,
on the task backend ``DOMAIN_EVENTS["TASKS_BACKEND"]`` names.

This module imports ``django.tasks`` (Django 6+), so it is imported only when a receiver or
``DOMAIN_EVENTS["DISPATCHER"]`` names ``"tasks"``. The task it enqueues is
``django_domain_events.dispatchers.tasks.tasks.deliver``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task

from django_domain_events.conf import settings
from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery
from django_domain_events.dispatchers.marking import put_back_unsent
from django_domain_events.dispatchers.tasks.tasks import deliver

logger = logging.getLogger("django_domain_events")


def delivery_task(owed: OwedDelivery) -> Task[[str, str], str]:
    """The ``deliver`` task as ``owed`` is enqueued: on ``TASKS_BACKEND``, on its receiver's
    queue (else ``TASKS_QUEUE``, else the backend's default queue), with its receiver's priority
    from ``TASKS_PRIORITIES`` (else ``TASKS_PRIORITY``)."""
    return deliver.using(
        backend=settings.TASKS_BACKEND,
        queue_name=owed.queue or settings.TASKS_QUEUE or DEFAULT_TASK_QUEUE_NAME,
        priority=settings.TASKS_PRIORITIES.get(owed.receiver, settings.TASKS_PRIORITY),
    )


class TasksDispatcher(Dispatcher):
    """Enqueues one ``deliver`` task per delivery on a ``django.tasks`` backend (see
    ``delivery_task()``). The task carries the delivery's id and database alias; the event stays
    in the outbox.

    A delivery whose task the backend refuses (a queue it does not have, a priority out of its
    range, its database down) is logged and goes back to ``pending``: the relay sends it again,
    and the publishing code never sees the error.
    """

    dispatched_at_insert = True

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        """Enqueue one task per delivery and write nothing more: the rows are ``dispatched``
        already (written so by ``publish()``, or claimed so by the relay). Those the backend
        does not take go back to ``pending``, owed."""
        unsent: list[OwedDelivery] = []
        for owed in deliveries:
            try:
                delivery_task(owed).enqueue(str(owed.delivery_id), owed.using)
            except Exception:
                logger.exception(
                    "Could not enqueue delivery %s (receiver %s) on task backend %r; it stays "
                    "owed and the relay will send it",
                    owed.delivery_id,
                    owed.receiver,
                    settings.TASKS_BACKEND,
                )
                unsent.append(owed)
        if unsent:
            put_back_unsent(unsent)
