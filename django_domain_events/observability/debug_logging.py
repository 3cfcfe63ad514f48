"""``DOMAIN_EVENTS["DEBUG"]``: log every publish, dispatch and delivery with ids and timings.

The records go to the ``django_domain_events`` logger at ``DEBUG`` level. ``publish()`` asks
whether debugging is on at every call, so the answer is cached until ``DOMAIN_EVENTS`` changes
(``override_settings`` sends ``setting_changed``): when it is off, the cost is one function call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django_domain_events.conf import SettingSwitch, settings

if TYPE_CHECKING:
    from django_domain_events.dispatchers.base import OwedDelivery

logger = logging.getLogger("django_domain_events")


def _debug_on() -> bool:
    """Whether ``DOMAIN_EVENTS["DEBUG"]`` is on; ask ``enabled()``, which caches it."""
    return settings.DEBUG


enabled = SettingSwitch(_debug_on)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def published(
    events: Sequence[Sequence[Any]],
    deliveries: Sequence[Sequence[Any]],
    alias: str,
    seconds: float,
    *,
    collected: bool = False,
) -> None:
    """Log one ``publish()`` or ``publish_many()`` call: each event and its deliveries.

    ``events`` and ``deliveries`` are the row tuples ``publish()`` writes (column orders in
    ``models.EVENT_COLUMNS`` and ``models.DELIVERY_COLUMNS``).
    """
    by_event: dict[Any, list[str]] = {}
    for delivery_id, event_id, receiver, dispatcher, *_ in deliveries:
        by_event.setdefault(event_id, []).append(f"{delivery_id} {receiver} via {dispatcher}")
    verb = "Collected" if collected else "Published"
    for event_id, event_type, _version, _payload, _at, correlation_id, causation_id, *_ in events:
        listed = by_event.get(event_id, [])
        logger.debug(
            "%s %s %s on %r (correlation %s, cause %s) with %d deliveries [%s] in %s",
            verb,
            event_type,
            event_id,
            alias,
            correlation_id,
            causation_id or "-",
            len(listed),
            ", ".join(listed),
            _ms(seconds),
        )


def dispatched(name: str, deliveries: Sequence[OwedDelivery], seconds: float) -> None:
    """Log the hand-over of one transaction's deliveries to one dispatcher."""
    logger.debug(
        "Dispatched %d deliveries to %r in %s: [%s]",
        len(deliveries),
        name,
        _ms(seconds),
        ", ".join(str(item.delivery_id) for item in deliveries),
    )


def delivered(owed: OwedDelivery, outcome: str, attempt: int, seconds: float) -> None:
    """Log one run of a delivery and its outcome."""
    logger.debug(
        "Delivery %s to %s (attempt %d): %s in %s",
        owed.delivery_id,
        owed.receiver,
        attempt,
        outcome,
        _ms(seconds),
    )
