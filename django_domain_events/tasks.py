"""The Celery tasks, where ``app.autodiscover_tasks()`` looks for them: ``deliver`` (one delivery)
and ``relay`` (a relay pass, for Celery beat). They live in ``dispatchers.celery.tasks``."""

from __future__ import annotations

from django_domain_events.dispatchers.celery.tasks import deliver, relay

__all__ = ["deliver", "relay"]
