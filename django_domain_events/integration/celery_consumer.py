"""The consumer inside a Celery worker: a worker bootstep that runs what ``manage.py
consume_events`` runs, in a thread of the worker's main process.

Add it to the project's Celery app, and every worker started from it consumes
``DOMAIN_EVENTS["CONSUME"]``::

    from django_domain_events.integration.celery_consumer import ConsumeEventsStep

    app.steps["worker"].add(ConsumeEventsStep)

A warm shutdown (SIGTERM) lets the message in hand finish and be acknowledged, then the worker
exits; a cold one (SIGQUIT) waits for it no longer than ``COLD_STOP_TIMEOUT``. Nothing of
Django's or the outbox's is imported before the worker starts the step.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import bootsteps

if TYPE_CHECKING:
    from django_domain_events.integration.consuming import Consumer

logger = logging.getLogger("django_domain_events")

WARM_STOP_TIMEOUT = 60.0
"""Seconds a warm shutdown waits for the message in hand to be settled."""
COLD_STOP_TIMEOUT = 5.0
"""Seconds a cold shutdown waits for it."""


class ConsumeEventsStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Consumes ``DOMAIN_EVENTS["CONSUME"]``'s queue into the ``@consumer`` receivers while the
    worker runs, in a thread started after the worker's pool and stopped before it."""

    requires = ("celery.worker.components:Pool",)
    label = "consume_events"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.consumer: Consumer | None = None
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        """Build the consumer from the settings and start its thread."""
        from django_domain_events.integration.consuming import Consumer
        from django_domain_events.integration.subscriptions import configured_subscription
        from django_domain_events.transports import transport_for

        subscription = configured_subscription()
        self.consumer = Consumer(
            transport_for(subscription.transport),
            queue=subscription.queue,
            destinations=subscription.destinations,
        )
        bound = ", ".join(f"{d.name} ({d.routing_key})" for d in subscription.destinations)
        logger.info(
            "Consuming queue %r on transport %r in the worker, bound to %s",
            subscription.queue,
            subscription.transport,
            bound,
        )
        self.thread = threading.Thread(target=self._run, name="consume_events", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.db import connections

        assert self.consumer is not None
        try:
            totals = self.consumer.run()
            logger.info("Consumer in the worker done: %s", totals)
        except Exception:
            logger.exception("The consumer in the worker stopped")
        finally:
            connections.close_all()
            self.consumer.transport.close()

    def stop(self, parent: Any) -> None:
        """Warm shutdown: wait for the message in hand to be settled."""
        self._stop(WARM_STOP_TIMEOUT)

    def terminate(self, parent: Any) -> None:
        """Cold shutdown: wait for it briefly; what is left unacknowledged goes back to the
        queue."""
        self._stop(COLD_STOP_TIMEOUT)

    def _stop(self, timeout: float) -> None:
        if self.consumer is None or self.thread is None:
            return
        logger.info("Stopping the consumer in the worker once the message in hand is settled")
        self.consumer.stop()
        self.thread.join(timeout)
        if self.thread.is_alive():
            logger.warning(
                "The consumer in the worker did not stop within %g s; its unacknowledged "
                "messages go back to the queue",
                timeout,
            )
        self.consumer = self.thread = None
