"""Deleting inbox rows past their retention (``DOMAIN_EVENTS["INBOX_RETENTION"]``), in small
batches of one short transaction each, so consumers writing the inbox meanwhile never wait
long."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from django_domain_events.conf import settings
from django_domain_events.integration.inbox import InboxMessage

BATCH_SIZE = 500
"""Inbox rows deleted per transaction by default."""


def inbox_retention() -> dict[str, dt.timedelta]:
    """How long rows of each outcome are kept, for the outcomes that are pruned at all."""
    return {outcome: kept for outcome, kept in settings.INBOX_RETENTION.items() if kept is not None}


def prune_inbox(*, using: str = "default", batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete the rows received longer ago than their outcome's retention; rows deleted by
    outcome. A pruned processed row no longer guards against a copy of its message: keep
    processed rows longer than the broker may redeliver."""
    now = timezone.now()
    deleted: dict[str, int] = {}
    for outcome, kept in inbox_retention().items():
        rows = InboxMessage.objects.using(using).received_before(outcome, now - kept)
        total = 0
        while True:
            with transaction.atomic(using=using):
                batch = list(rows.order_by("received_at").values_list("pk", flat=True)[:batch_size])
                if batch:
                    InboxMessage.objects.using(using).filter(pk__in=batch).delete()
            total += len(batch)
            if len(batch) < batch_size:
                break
        deleted[outcome] = total
    return deleted
