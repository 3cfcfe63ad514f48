"""Retrying consumed messages from the inbox: failed, dead, unknown-type and malformed rows,
consumed again from the message they kept, now that the code may know what to do with it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from django_domain_events.exceptions import MessageFormatError
from django_domain_events.integration.consuming import Consumed, consume_message
from django_domain_events.integration.inbox import (
    NO_RECEIVER,
    RETRYABLE_OUTCOMES,
    InboxMessage,
)
from django_domain_events.integration.messages import from_wire


@dataclass(frozen=True)
class RetryTotals:
    """How retried inbox rows came out."""

    processed: int = 0
    still_failing: int = 0
    skipped: int = 0
    """Rows not retryable (processed already) or without a kept message."""

    def __str__(self) -> str:
        return (
            f"{self.processed} processed, {self.still_failing} still failing, "
            f"{self.skipped} skipped"
        )


def retry_inbox_messages(rows: Iterable[InboxMessage], *, using: str = "default") -> RetryTotals:
    """Consume the kept message of each retryable row again: a receiver's row runs that
    receiver only; an unknown-type or malformed row runs every receiver its type has now, and
    is deleted once it has some (their own rows record the outcome). A failure leaves the row
    dead, with the new error."""
    processed = failing = skipped = 0
    for row in rows:
        if row.outcome not in RETRYABLE_OUTCOMES or row.raw_body is None:
            skipped += 1
            continue
        try:
            message = from_wire(row.raw_headers or {}, bytes(row.raw_body))
        except MessageFormatError as exc:
            InboxMessage.objects.using(using).filter(pk=row.pk).update(last_error=str(exc))
            failing += 1
            continue
        only = row.receiver or None
        outcomes = consume_message(
            message, row.raw_headers or {}, bytes(row.raw_body), using=using, only=only
        )
        if row.receiver == NO_RECEIVER:
            if Consumed.UNKNOWN_TYPE in outcomes:
                failing += 1
                continue
            with transaction.atomic(using=using):
                InboxMessage.objects.using(using).filter(pk=row.pk).delete()
        if all(outcome in (Consumed.PROCESSED, Consumed.DUPLICATE) for outcome in outcomes):
            processed += 1
        else:
            failing += 1
    return RetryTotals(processed, failing, skipped)
