"""What the Celery cases run in the worker: the floors' bare tasks and our receiver."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from django_domain_events import receiver

from .events import OrderPlaced
from .models import RawEvent

CELERY_RECEIVER = "benchapp.celery_noop"
"""Name of the no-op receiver the Celery cases publish to, in both processes."""

CELERY_ORDERED_RECEIVER = "benchapp.celery_noop_ordered"
"""Name of the same no-op as an ordered receiver, for the ordering cases."""


@shared_task(name="benchapp.noop")
def noop(pk: str, alias: str) -> None:
    """B5's task: never run (B5 measures the sending only)."""


@shared_task(name="benchapp.touch")
def touch(pk: str, alias: str) -> None:
    """B6's task: load the row, do nothing with it, mark it handled."""
    row = RawEvent.objects.using(alias).get(pk=pk)
    RawEvent.objects.using(alias).filter(pk=row.pk).update(handled_at=timezone.now())


def celery_noop(event: OrderPlaced) -> None:
    """Does nothing: the cost measured is the outbox's and Celery's."""


def register_celery_receiver(queue: str | None = None, *, ordered: bool = False) -> None:
    """Register ``celery_noop`` as a Celery-dispatched receiver of ``OrderPlaced``: under
    ``CELERY_ORDERED_RECEIVER`` as an ordered receiver when ``ordered`` is true."""
    name = CELERY_ORDERED_RECEIVER if ordered else CELERY_RECEIVER
    receiver(OrderPlaced, name=name, dispatcher="celery", queue=queue, ordered=ordered)(celery_noop)
