"""The accounting service's consumers. django_domain_events imports this module at start-up
(every installed app's ``receivers`` module), which registers them.

``book_payment`` runs in one transaction with its inbox row: the entry commits if and only if
the message is marked processed, and a redelivered copy books nothing.
"""

from __future__ import annotations

import logging
import os
import signal

from django.db import transaction

from django_domain_events import Envelope, consumer

from .events import PaymentSettled
from .models import LedgerEntry

logger = logging.getLogger(__name__)

# Fault injection for the tests of two services: on the N-th message this process books, it
# kills itself with SIGKILL once the booking committed, before the message is acknowledged.
CRASH_AFTER_COMMIT = "ACCOUNTING_CRASH_AFTER_COMMIT"
_booked_here = 0


@consumer(PaymentSettled)
def book_payment(event: PaymentSettled, envelope: Envelope) -> None:
    """Book the payment in the ledger."""
    global _booked_here
    LedgerEntry.objects.create(
        order_id=event.order_id,
        amount_cents=event.amount_cents,
        currency=event.currency,
        event_id=envelope.event_id,
    )
    logger.info("Booked order #%s (event %s)", event.order_id, envelope.event_id)
    _booked_here += 1
    if str(_booked_here) == os.environ.get(CRASH_AFTER_COMMIT):
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
