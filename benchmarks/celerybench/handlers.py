"""The receiver measured: it does nothing, so the cost is the task's and the outbox's."""

from __future__ import annotations

from django_domain_events import NamedEvent, receiver

NOTED = "celerybench.noted"


@receiver(NOTED, name="celerybench.noop")
def noop(event: NamedEvent) -> None:
    """Does nothing."""
