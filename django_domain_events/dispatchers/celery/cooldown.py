"""The broker cool-down: after a send to a broker fails, this process does not try that broker
again for ``DOMAIN_EVENTS["CELERY_BROKER_COOLDOWN"]`` seconds.

A broker that is down or hung costs the first publish its bounded timeout; the publishes that
follow within the cool-down skip the broker and leave their deliveries owed for the relay, so
an outage costs each request milliseconds, not seconds.
"""

from __future__ import annotations

import threading
import time

_until: dict[str, float] = {}
_lock = threading.Lock()


def start(broker: str, seconds: float) -> None:
    """Stop sending to ``broker`` (its URL) for ``seconds`` from now."""
    if seconds <= 0:
        return
    with _lock:
        _until[broker] = time.monotonic() + seconds


def active(broker: str) -> bool:
    """Whether sends to ``broker`` are being skipped right now."""
    until = _until.get(broker)
    if until is None:
        return False
    if time.monotonic() < until:
        return True
    with _lock:
        if _until.get(broker) == until:
            del _until[broker]
    return False


def clear() -> None:
    """End every cool-down (tests; a process that knows the broker is back)."""
    with _lock:
        _until.clear()
