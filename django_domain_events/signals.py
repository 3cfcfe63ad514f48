"""Django signals sent as events are published and delivered.

Every signal is sent after the fact (after commit for ``event_published``) with ``send_robust``:
a failing listener is logged and never breaks publishing or delivery.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_domain_events")

event_published = Signal()
"""Sent once a published event is committed. Arguments: ``event``, ``envelope``, ``using``."""

delivery_succeeded = Signal()
"""Sent after a receiver succeeded. Arguments: ``event``, ``envelope``, ``receiver``, ``using``."""

delivery_failed = Signal()
"""Sent after a receiver failed and will be retried. Arguments as ``delivery_succeeded`` plus
``exception`` and ``retry_at``."""

delivery_dead = Signal()
"""Sent when a delivery becomes a dead letter. Arguments as ``delivery_succeeded`` plus
``exception`` (the receiver's last error; the decoding error when the stored event cannot be
read; None when no receiver of that name is registered) and ``reason``. ``event`` and
``envelope`` are None when the stored event could not be read."""


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` if anyone listens, logging (not raising) listener failures."""
    # signal.receivers is checked first: has_listeners() alone costs microseconds per event.
    if not signal.receivers or not signal.has_listeners(sender):
        return
    for listener, response in signal.send_robust(sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "Signal listener %r raised",
                listener,
                exc_info=(type(response), response, response.__traceback__),
            )
