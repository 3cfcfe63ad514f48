"""The outbox in the Django admin: a read-only audit trail of events and their deliveries,
the retry, skip and replay actions, and a dashboard.

- ``events``: ``OutboxEventAdmin`` (the events list, the event page, the dashboard's URL).
- ``deliveries``: ``DeliveryAdmin``, with an ordered delivery's place in its line.
- ``inbox``: ``InboxMessageAdmin``, consumed messages and their retry.
- ``actions``: retry, skip in ordering lines, and replay, each behind a permission and a
  confirmation page.
- ``dashboard``: the last 24 hours, what is owed, the failing receivers, the blocked keys.
- ``lines``: ordering lines as the admin shows them.
- ``filters``, ``dates``, ``pagination``, ``distinct``: what keeps the lists fast over
  millions of rows.
- ``highlighting``, ``charts``, ``badges``: JSON, SVG and state badges made on the server.
"""

from __future__ import annotations

from django_domain_events.admin.deliveries import DeliveryAdmin
from django_domain_events.admin.events import DeliveryInline, OutboxEventAdmin
from django_domain_events.admin.inbox import InboxMessageAdmin

__all__ = ["DeliveryAdmin", "DeliveryInline", "InboxMessageAdmin", "OutboxEventAdmin"]
