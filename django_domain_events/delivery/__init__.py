"""Delivery: running one delivery (claim, call, settle), loading a stored one, ordering lines and
the relay. ``run_delivery``, ``owed_delivery`` and ``run_stored_delivery`` are what a custom
dispatcher needs."""

from __future__ import annotations

from django_domain_events.delivery.runner import (
    Outcome,
    owed_delivery,
    run_delivery,
    run_stored_delivery,
)

__all__ = ["Outcome", "owed_delivery", "run_delivery", "run_stored_delivery"]
