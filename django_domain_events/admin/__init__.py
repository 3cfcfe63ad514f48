"""The outbox in the Django admin: a read-only audit trail of events and their deliveries,
the retry and replay actions, and a dashboard.

- ``events``: ``OutboxEventAdmin`` (the events list, the event page, the dashboard's URL).
- ``deliveries``: ``DeliveryAdmin``.
- ``actions``: retry and replay, each behind its own permission and a confirmation page.
- ``dashboard``: the last 24 hours, what is owed, the failing receivers.
- ``filters``, ``dates``, ``pagination``, ``distinct``: what keeps the lists fast over
  millions of rows.
- ``highlighting``, ``charts``, ``badges``: JSON, SVG and state badges made on the server.
"""

from __future__ import annotations

from .deliveries import DeliveryAdmin
from .events import DeliveryInline, OutboxEventAdmin

__all__ = ["DeliveryAdmin", "DeliveryInline", "OutboxEventAdmin"]
