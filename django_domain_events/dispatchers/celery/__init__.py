"""The Celery dispatcher and the tasks it sends. Importing this package imports Celery; nothing
else in the package imports it unless a Celery dispatcher is named."""

from __future__ import annotations

from django_domain_events.dispatchers.celery.dispatcher import CeleryDispatcher, celery_app

__all__ = ["CeleryDispatcher", "celery_app"]
