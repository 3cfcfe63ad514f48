"""Delivery states as coloured badges (colours in ``admin.css``)."""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_domain_events.models import DeliveryState

STATE_ORDER = (
    DeliveryState.DELIVERED,
    DeliveryState.CANCELLED,
    DeliveryState.DISPATCHED,
    DeliveryState.PENDING,
    DeliveryState.SCHEDULED,
    DeliveryState.WAITING,
    DeliveryState.FAILED,
    DeliveryState.DEAD,
)
"""The order badges are listed in: from settled and fine to needing a person."""


def state_badge(state: str, count: int | None = None) -> SafeString:
    """A coloured badge naming a delivery state, with a count before it if given."""
    label = DeliveryState(state).label if state in DeliveryState.values else state
    if count is None:
        return format_html('<span class="dde-badge dde-state-{}">{}</span>', state, label)
    return format_html('<span class="dde-badge dde-state-{}">{} {}</span>', state, count, label)
