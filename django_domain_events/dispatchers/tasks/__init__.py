"""The ``django.tasks`` dispatcher (Django 6+) and the task it enqueues. Importing this package
imports ``django.tasks``; nothing else in the package imports it unless ``"tasks"`` is named."""

from __future__ import annotations

from django_domain_events.dispatchers.tasks.dispatcher import TasksDispatcher
from django_domain_events.dispatchers.tasks.tasks import deliver

__all__ = ["TasksDispatcher", "deliver"]
