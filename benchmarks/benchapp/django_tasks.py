"""What the django.tasks cases enqueue (Django 6): the floor's bare task and our receiver."""

from __future__ import annotations

from django.tasks import task
from django.utils import timezone

from django_domain_events import receiver

from .events import OrderPlaced
from .models import RawEvent

TASKS_RECEIVER = "benchapp.tasks_noop"
"""Name of the no-op receiver the django.tasks cases publish to."""


@task()
def noop(pk: str, alias: str) -> None:
    """The floor's task: never run (only the enqueueing is measured)."""


@task()
def touch(pk: str, alias: str) -> None:
    """The end-to-end floor's task: load the row, do nothing with it, mark it handled."""
    row = RawEvent.objects.using(alias).get(pk=pk)
    RawEvent.objects.using(alias).filter(pk=row.pk).update(handled_at=timezone.now())


def tasks_noop(event: OrderPlaced) -> None:
    """Does nothing: the cost measured is the outbox's and the task backend's."""


def register_tasks_receiver(queue: str) -> None:
    """Register ``tasks_noop`` as a receiver of ``OrderPlaced`` dispatched with django.tasks."""
    receiver(OrderPlaced, name=TASKS_RECEIVER, dispatcher="tasks", queue=queue)(tasks_noop)
