"""A plain Celery task, the floor the Celery dispatcher's publish is compared with."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="celerybench.noop")
def noop(pk: int) -> None:
    """Does nothing."""


@shared_task(name="celerybench.touch")
def touch(pk: str) -> None:
    """B6's task: load a row, do nothing with it, update it (its ``occurred_at`` says when)."""
    from django.utils import timezone

    from django_domain_events.models import OutboxEvent

    row = OutboxEvent.objects.get(pk=pk)
    OutboxEvent.objects.filter(pk=row.pk).update(occurred_at=timezone.now())
