"""A plain Celery task, the floor the Celery dispatcher's publish is compared with."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="celerybench.noop")
def noop(pk: int) -> None:
    """Does nothing."""
