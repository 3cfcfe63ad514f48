"""Pruning by retention on a relay's own schedule (``relay_events --prune-every``), so that no
cron job is needed.

Between two of its passes, a relay whose prune is due deletes events past their retention in
small batches, one short transaction each, for at most ``SLICE_SECONDS``; what is left waits for
the gap after its next pass, so deliveries are never held up for long. Several relays pruning at
once lock disjoint events (``SKIP LOCKED``) and do no harm.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.db import DatabaseError

from django_domain_events.operations.pruning import PruneResult, prune_events

logger = logging.getLogger("django_domain_events")

BATCH_SIZE = 500
"""Events a relay deletes per transaction."""

SLICE_SECONDS = 1.0
"""How long a relay prunes, at most, between two passes (the batch in hand is finished)."""


@dataclass
class PruneSchedule:
    """Prunes database ``using`` by retention every ``every`` seconds, in slices: call
    ``run_if_due()`` between passes. The first prune is due at once."""

    using: str
    every: float
    batch_size: int = BATCH_SIZE
    slice_seconds: float = SLICE_SECONDS
    _next_at: float = field(default=0.0, init=False, repr=False)
    _unfinished: bool = field(default=False, init=False, repr=False)

    def run_if_due(self) -> PruneResult | None:
        """Prune one slice if a prune is due or unfinished; return what it deleted, or None if
        it did not run (not due, or a database error, which is logged)."""
        now = time.monotonic()
        if not self._unfinished:
            if now < self._next_at:
                return None
            self._next_at = now + self.every
        try:
            result = prune_events(
                using=self.using, batch_size=self.batch_size, deadline=now + self.slice_seconds
            )
        except DatabaseError:
            logger.exception("Pruning by retention failed; the relay tries again next time")
            self._unfinished = False
            return None
        self._unfinished = not result.complete
        if result.events:
            logger.info(
                "Pruned %d events past their retention, with %d deliveries and %d attempts%s",
                result.events,
                result.deliveries,
                result.attempts,
                "; more after the next pass" if self._unfinished else "",
            )
        return result
