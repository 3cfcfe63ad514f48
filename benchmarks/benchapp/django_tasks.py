"""What the django.tasks cases enqueue (Django 6): the floor's bare task and our receiver."""

from __future__ import annotations

from django.tasks import task

from django_domain_events import receiver

from .events import OrderPlaced

TASKS_RECEIVER = "benchapp.tasks_noop"
"""Name of the no-op receiver the django.tasks cases publish to."""


@task()
def noop(pk: str, alias: str) -> None:
    """The floor's task: never run (only the enqueueing is measured)."""


def tasks_noop(event: OrderPlaced) -> None:
    """Does nothing: the cost measured is the outbox's and the task backend's."""


def register_tasks_receiver(queue: str) -> None:
    """Register ``tasks_noop`` as a receiver of ``OrderPlaced`` dispatched with django.tasks."""
    receiver(OrderPlaced, name=TASKS_RECEIVER, dispatcher="tasks", queue=queue)(tasks_noop)
