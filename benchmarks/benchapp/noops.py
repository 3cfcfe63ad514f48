"""No-op receivers, registered only for the cases that want them.

This module is not named ``receivers`` or ``handlers`` on purpose: start-up autodiscovery would
import it, and every case chooses its own receivers inside an isolated registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.test import override_settings

from django_domain_events import receiver
from django_domain_events.declaration.registry import registry

from .events import OrderPlaced


def noop_1(event: OrderPlaced) -> None:
    """Does nothing: the cost measured is the outbox's, not the receiver's."""


def noop_2(event: OrderPlaced) -> None:
    """Does nothing."""


def noop_3(event: OrderPlaced) -> None:
    """Does nothing."""


NOOPS = (noop_1, noop_2, noop_3)


@contextmanager
def noop_receivers(
    count: int,
    *,
    dispatcher: str = "deferred",
    ordered: bool = False,
    shares_commit: bool = False,
    options: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Run a block with exactly ``count`` no-op receivers of ``OrderPlaced``, all dispatched by
    ``dispatcher`` (the project default, ``DOMAIN_EVENTS["DISPATCHER"]``, for the block), all
    ordered (``@receiver(..., ordered=True)``) when ``ordered`` is true, declared
    ``shares_commit=True`` when ``shares_commit`` is, and the other
    ``DOMAIN_EVENTS`` keys of ``options`` (``{"TRACING": True}``, say)."""
    if not 0 <= count <= len(NOOPS):
        raise ValueError(f"noop_receivers({count}): between 0 and {len(NOOPS)} receivers exist.")
    domain_events = {**(options or {}), "DISPATCHER": dispatcher}
    with registry.isolated(), override_settings(DOMAIN_EVENTS=domain_events):
        for func in NOOPS[:count]:
            receiver(OrderPlaced, ordered=ordered, shares_commit=shares_commit)(func)
        yield
