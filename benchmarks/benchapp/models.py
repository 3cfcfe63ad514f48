"""The row the raw floors write: what an app stores for an event without the outbox."""

from __future__ import annotations

import uuid

from django.db import models


class RawEvent(models.Model):
    """Comparable to an outbox event row: UUID key, JSON payload, an indexed type and time."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=255)
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    handled_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by the after-commit UPDATE of floor B4."
    )

    class Meta:
        indexes = (
            models.Index(fields=("event_type",), name="bench_raw_type_idx"),
            models.Index(fields=("occurred_at",), name="bench_raw_time_idx"),
        )

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"
