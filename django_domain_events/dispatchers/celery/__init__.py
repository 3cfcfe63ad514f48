"""The Celery dispatcher and the tasks it sends. Importing this package imports Celery; nothing
else in the package imports it unless a Celery dispatcher is named."""

from __future__ import annotations

from django_domain_events.dispatchers.celery.dispatcher import CeleryDispatcher, celery_app

# Importing any module of this package runs this first, so the tasks are registered with Celery
# before the dispatcher can run one eagerly (CELERY_TASK_ALWAYS_EAGER).
from django_domain_events.dispatchers.celery.tasks import deliver, relay

__all__ = ["CeleryDispatcher", "celery_app", "deliver", "relay"]
