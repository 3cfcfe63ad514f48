"""Retry policy: how many attempts a receiver gets and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django_domain_events.conf import settings
from django_domain_events.declaration.registry import Receiver


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, for ``max_attempts`` attempts in all."""

    max_attempts: int
    base_delay: float
    max_delay: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter (uniform between 0 and the exponential cap) spreads retries of many
        deliveries that failed together, so they do not hit a recovering service at once.
        """
        # The exponent is bounded first: 2.0 ** 1100 overflows long before the cap applies.
        exponent = min(max(0, attempt - 1), 64)
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        return random.uniform(0, ceiling)

    def exhausted(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` was the last one allowed."""
        return attempt >= self.max_attempts


def policy_for(receiver: Receiver | None) -> RetryPolicy:
    """The receiver's policy: its own ``max_attempts`` over the project's defaults."""
    max_attempts = settings.MAX_ATTEMPTS
    if receiver is not None and receiver.max_attempts is not None:
        max_attempts = receiver.max_attempts
    return RetryPolicy(
        max_attempts=max_attempts,
        base_delay=settings.RETRY_BASE_DELAY,
        max_delay=settings.RETRY_MAX_DELAY,
    )
