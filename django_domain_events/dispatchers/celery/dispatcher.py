"""The Celery dispatcher: after commit, one Celery task per delivery, carrying only its id.

This module imports Celery, so it is imported only when a receiver or
``DOMAIN_EVENTS["DISPATCHER"]`` names ``"celery"``. The task it sends,
``django_domain_events.deliver``, is in ``django_domain_events.tasks``, where the project's
``app.autodiscover_tasks()`` finds it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery, current_app
from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS
from celery.utils.imports import symbol_by_name
from django.db import connections, transaction
from django.db.models import Case, CharField, Q, Value, When
from django.utils import timezone
from kombu import pools
from kombu.utils.url import maybe_sanitize_url

from django_domain_events.conf import settings
from django_domain_events.declaration.registry import registry, time_limit_for
from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery
from django_domain_events.dispatchers.celery import cooldown
from django_domain_events.dispatchers.marking import put_back_unsent
from django_domain_events.exceptions import DispatcherError
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.observability import metrics
from django_domain_events.statements import NO_FLUSH

logger = logging.getLogger("django_domain_events")

TASK_NAME = "django_domain_events.deliver"
"""Name of the task that runs one delivery (``django_domain_events.tasks.deliver``)."""

# A publish to an unreachable broker is retried at once (a pooled connection the broker closed
# reconnects on the first retry), then after waits growing by this step up to this ceiling,
# for as long as DOMAIN_EVENTS["CELERY_PUBLISH_TIMEOUT"] allows.
_RETRY_STEP = 0.25
_RETRY_CEILING = 0.5


def publish_retry_policy(timeout: float) -> dict[str, float | int]:
    """kombu's retry policy for a publish whose waits between retries add up to at most
    ``timeout`` seconds."""
    retries, waited, wait = 0, 0.0, 0.0
    while waited + wait <= timeout:
        waited += wait
        retries += 1
        wait = min(wait + _RETRY_STEP, _RETRY_CEILING)
    return {
        "max_retries": retries,
        "interval_start": 0.0,
        "interval_step": _RETRY_STEP,
        "interval_max": _RETRY_CEILING,
    }


def bounded_producers(app: Celery, timeout: float) -> pools.ProducerPool:
    """A pool of producers on connections to ``app``'s broker whose connect and every answer
    are bounded by ``timeout`` seconds, where the app's own settings do not bound them: a
    ``broker_connection_timeout`` left at Celery's default, and Redis' ``socket_timeout`` and
    ``socket_connect_timeout`` in ``broker_transport_options``. The app's own connections
    (its workers') are left as they are."""
    configured = app.conf.broker_transport_options or {}
    transport_options = {
        key: timeout
        for key in ("socket_timeout", "socket_connect_timeout")
        if configured.get(key) is None
    }
    connect_timeout = app.conf.broker_connection_timeout
    if connect_timeout is None or connect_timeout == CELERY_DEFAULTS["broker_connection_timeout"]:
        connect_timeout = timeout
    connection = app.connection_for_write(
        connect_timeout=connect_timeout, transport_options=transport_options
    )
    producers: pools.ProducerPool = pools.producers[connection]
    producers.limit = app.pool.limit
    return producers


HARD_TIME_LIMIT_AFTER = 10.0
"""Seconds after a receiver's soft time limit at which its worker process is killed: for a
receiver that swallowed ``SoftTimeLimitExceeded`` or is stuck where it cannot be raised."""


def time_limits(owed: OwedDelivery) -> dict[str, float]:
    """The task's ``soft_time_limit`` and ``time_limit`` for the delivery's receiver (see
    ``@receiver(timeout=...)``); none when it has no limit."""
    limit = time_limit_for(registry.get(owed.receiver))
    if limit is None:
        return {}
    return {"soft_time_limit": limit, "time_limit": limit + HARD_TIME_LIMIT_AFTER}


def _timed_out(exc: BaseException, interval: float) -> None:
    # kombu's errback between retries of a publish: a broker that let a connect or an answer
    # time out is hung, not restarted, and asking it again would cost the timeout again.
    # Raising here ends the retries.
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        raise exc


def celery_app(path: str | None) -> Celery:
    """The Celery app at ``path`` (``"proj.celery.app"`` or ``"proj.celery:app"``), or Celery's
    current app when ``path`` is None: the project's own once its module has created it."""
    if path is None:
        app: Celery = current_app._get_current_object()
        return app
    try:
        found = symbol_by_name(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise DispatcherError(
            f'DOMAIN_EVENTS["CELERY_APP"] = {path!r} cannot be imported: {exc}'
        ) from exc
    if not isinstance(found, Celery):
        raise DispatcherError(
            f'DOMAIN_EVENTS["CELERY_APP"] = {path!r} is {found!r}, not a Celery app.'
        )
    return found


def keeps_results(app: Celery) -> bool:
    """Whether the delivery tasks store their results: only with django-celery-results'
    database backend, whose ``TaskResult`` rows the admin can show next to a delivery."""
    return type(app.backend).__module__.startswith("django_celery_results.backends.database")


class CeleryDispatcher(Dispatcher):
    """Sends one ``django_domain_events.deliver`` task per delivery, JSON serialized, to the
    receiver's queue (else ``DOMAIN_EVENTS["CELERY_QUEUE"]``, else Celery's routing).

    The task carries the delivery's id and database alias; the event stays in the outbox. A
    broker that cannot be reached within ``DOMAIN_EVENTS["CELERY_PUBLISH_TIMEOUT"]`` seconds, or
    that does not answer within ``CELERY_BROKER_TIMEOUT``, is logged and the deliveries it did
    not take stay owed: the publishing code never sees it. For ``CELERY_BROKER_COOLDOWN``
    seconds after that, this process does not try the broker at all.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._app: Celery | None = None
        self._send_plan: _SendPlan | None = None

    @property
    def app(self) -> Celery:
        """The Celery app tasks are sent with (see ``DOMAIN_EVENTS["CELERY_APP"]``)."""
        path = settings.CELERY_APP
        if path is None:
            return celery_app(None)
        if self._app is None:
            # Settings changes discard this instance, so the app found here stays right.
            self._app = celery_app(path)
        return self._app

    dispatched_at_insert = True

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        """Send one task per delivery, its id the delivery's id, and write nothing more: the
        rows are ``dispatched`` already (written so by ``publish()``, or claimed so by the
        relay). The deliveries the broker does not take go back to ``pending``, owed."""
        sent = self.send(deliveries, mark=False)
        if len(sent) < len(deliveries):
            taken = {owed.delivery_id for owed in sent}
            unsent = [owed for owed in deliveries if owed.delivery_id not in taken]
            put_back_unsent(unsent)

    def send(
        self,
        deliveries: Sequence[OwedDelivery],
        *,
        countdown: float | None = None,
        mark: bool = True,
    ) -> list[OwedDelivery]:
        """Send one task per delivery, ``countdown`` seconds from now if given; with ``mark``,
        mark the sent ones dispatched with fresh task ids (else the task id is the delivery id
        and nothing is written); return those sent.

        All the tasks go through one producer (one broker connection). If the broker or the
        app setting fails, the error is logged and the deliveries not yet sent are not
        returned. Never raises for it.
        """
        if not deliveries:
            return []
        try:
            app = self.app
        except DispatcherError:
            logger.exception("Could not send %d deliveries to Celery", len(deliveries))
            return []
        if app.conf.task_always_eager:
            return self._run_eagerly(app, deliveries, countdown)
        try:
            plan = self._plan(app)
        except Exception:
            logger.exception(
                "Could not send %d deliveries to Celery: its app's broker settings are "
                "unusable; they stay owed and the relay will send them",
                len(deliveries),
            )
            return []
        broker = plan.broker
        if cooldown.active(broker):
            logger.warning(
                "Did not send %d deliveries to Celery: a send to broker %s failed less than "
                "CELERY_BROKER_COOLDOWN seconds ago; they stay owed and the relay will send them",
                len(deliveries),
                maybe_sanitize_url(broker),
            )
            if metrics.enabled():
                metrics.sends_skipped(self.name, len(deliveries))
            return []
        queue = plan.queue
        options = plan.options if not countdown else {**plan.options, "countdown": countdown}
        sent: list[tuple[OwedDelivery, str]] = []
        try:
            with plan.producers.acquire(block=True) as producer:  # type: ignore[no-untyped-call]
                for owed in deliveries:
                    task_id = str(uuid.uuid4()) if mark else str(owed.delivery_id)
                    app.send_task(
                        TASK_NAME,
                        args=[str(owed.delivery_id), owed.using],
                        task_id=task_id,
                        producer=producer,
                        queue=owed.queue or queue,
                        **time_limits(owed),
                        **options,
                    )
                    sent.append((owed, task_id))
        except Exception:
            cooldown.start(broker, settings.CELERY_BROKER_COOLDOWN)
            logger.exception(
                "Could not send %d of %d deliveries to Celery (broker %s); they stay owed "
                "and the relay will send them",
                len(deliveries) - len(sent),
                len(deliveries),
                maybe_sanitize_url(broker),
            )
        if sent and mark:
            by_alias: dict[str, list[tuple[OwedDelivery, str]]] = {}
            for owed, task_id in sent:
                by_alias.setdefault(owed.using, []).append((owed, task_id))
            for alias, items in by_alias.items():
                try:
                    mark_dispatched(alias, items)
                except Exception:
                    logger.exception(
                        "Sent %d deliveries to Celery but could not mark them dispatched; a "
                        "relay may send them again, and the copy will find them settled",
                        len(items),
                    )
        return [owed for owed, _ in sent]

    def _run_eagerly(
        self, app: Celery, deliveries: Sequence[OwedDelivery], countdown: float | None
    ) -> list[OwedDelivery]:
        # CELERY_TASK_ALWAYS_EAGER, Celery's test mode: run the tasks here and now, as
        # Task.apply_async() does (send_task() would ignore the setting, with a warning). A
        # retry is not run at once: it waits, failed, for testing.drain() or the relay.
        if countdown is not None:
            return []
        task = app.tasks[TASK_NAME]
        for owed in deliveries:
            task.apply(args=[str(owed.delivery_id), owed.using])
        return list(deliveries)

    def _plan(self, app: Celery) -> _SendPlan:
        # Worked out once per app: settings changes discard this instance, so what is kept
        # here stays right, and reading Celery's settings costs more than the rest of a send.
        plan = self._send_plan
        if plan is None or plan.app is not app:
            timeout = settings.CELERY_BROKER_TIMEOUT
            plan = self._send_plan = _SendPlan(
                app=app,
                broker=app.conf.broker_write_url or app.conf.broker_url or "",
                queue=settings.CELERY_QUEUE,
                producers=bounded_producers(app, timeout),
                options={
                    "serializer": "json",
                    "retry": True,
                    "retry_policy": {
                        **publish_retry_policy(settings.CELERY_PUBLISH_TIMEOUT),
                        "errback": _timed_out,
                    },
                    "confirm_timeout": timeout,
                    "ignore_result": not keeps_results(app),
                },
            )
        return plan


@dataclass(frozen=True)
class _SendPlan:
    """What every send to one Celery app uses: its broker's URL (the cooldown's key), the
    default queue, the pool of producers and the options of ``send_task()``."""

    app: Celery
    broker: str
    queue: str | None
    producers: pools.ProducerPool
    options: dict[str, Any]


def mark_dispatched(alias: str, sent: Sequence[tuple[OwedDelivery, str]]) -> int:
    """Mark deliveries handed to Celery as dispatched, with their task ids; return how many.

    Only a delivery still owed with the attempts it had when it was sent is marked: a worker
    may already have run it (delivered, or failed and scheduled its own retry). A delivery a
    worker is running right now is skipped rather than waited for: its row lock lasts until
    the receiver returns, and the request that published would wait that long.
    """
    connection = connections[alias]
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One statement and one round trip, where the ORM's version costs about 1 ms a publish.
        # This mark need not survive a crash: lost, it leaves the delivery owed and the relay
        # sends it again (the copy finds it settled). Not waiting for the WAL flush saves the
        # fsync of a second commit per publish. Only in a transaction of its own: the setting
        # lasts until the transaction ends.
        no_flush = not connection.in_atomic_block
        table = connection.ops.quote_name(Delivery._meta.db_table)
        owed_states = [DeliveryState.PENDING, DeliveryState.FAILED]
        with connection.cursor() as cursor:
            if len(sent) == 1:
                # The usual case, one receiver: plain parameters are quicker to send than arrays.
                [(owed, task_id)] = sent
                cursor.execute(
                    _MARK_ONE_POSTGRES.format(
                        table=table, durability=f"\nFROM {NO_FLUSH}" if no_flush else ""
                    ),
                    [
                        DeliveryState.DISPATCHED,
                        now,
                        task_id,
                        owed.delivery_id,
                        owed.attempts,
                        *owed_states,
                    ],
                )
            else:
                ids = [owed.delivery_id for owed, _ in sent]
                cursor.execute(
                    _MARK_MANY_POSTGRES.format(
                        table=table, durability=f", {NO_FLUSH}" if no_flush else ""
                    ),
                    [
                        DeliveryState.DISPATCHED,
                        now,
                        ids,
                        [task_id for _, task_id in sent],
                        [owed.attempts for owed, _ in sent],
                        ids,
                        *owed_states,
                    ],
                )
            return int(cursor.rowcount)
    by_attempts: dict[int, list[uuid.UUID]] = {}
    for owed, _ in sent:
        by_attempts.setdefault(owed.attempts, []).append(owed.delivery_id)
    match = Q()
    for attempts, ids in by_attempts.items():
        match |= Q(pk__in=ids, attempts=attempts)
    rows = Delivery.objects.using(alias).filter(
        match, state__in=(DeliveryState.PENDING, DeliveryState.FAILED)
    )
    task_ids: Value | Case
    if len(sent) == 1:
        task_ids = Value(sent[0][1])
    else:
        task_ids = Case(
            *(When(pk=owed.delivery_id, then=Value(tid)) for owed, tid in sent),
            output_field=CharField(),
        )
    if not connection.features.has_select_for_update_skip_locked:
        return rows.update(state=DeliveryState.DISPATCHED, dispatched_at=now, task_id=task_ids)
    # MySQL and MariaDB cannot update a table selected in the same statement: Django runs the
    # locking SELECT first, and a SELECT ... FOR UPDATE needs a transaction to hold its locks.
    with transaction.atomic(using=alias):
        unlocked = rows.select_for_update(skip_locked=True).order_by().values("pk")
        return (
            Delivery.objects.using(alias)
            .filter(pk__in=unlocked)
            .update(state=DeliveryState.DISPATCHED, dispatched_at=now, task_id=task_ids)
        )


_MARK_ONE_POSTGRES = """
UPDATE {table}
SET state = %s, dispatched_at = %s, task_id = %s{durability}
WHERE id = (
  SELECT id FROM {table} WHERE id = %s AND attempts = %s AND state IN (%s, %s)
  FOR UPDATE SKIP LOCKED
)
"""
_MARK_MANY_POSTGRES = """
UPDATE {table} AS delivery
SET state = %s, dispatched_at = %s, task_id = sent.task_id
FROM unnest(%s::uuid[], %s::text[], %s::integer[]) AS sent (id, task_id, attempts){durability}
WHERE delivery.id = sent.id
  AND delivery.attempts = sent.attempts
  AND delivery.id IN (
    SELECT id FROM {table} WHERE id = ANY(%s::uuid[]) AND state IN (%s, %s)
    FOR UPDATE SKIP LOCKED
  )
"""
