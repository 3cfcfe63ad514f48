"""Models the test receivers write to, so tests can count receiver effects in the database."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from django_domain_events import Envelope, EventRecordingMixin


class Order(models.Model):
    total = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, default="new")

    def __str__(self) -> str:
        return f"Order {self.pk}"


class Effect(models.Model):
    """One row per receiver run that committed: counting them proves exactly-once effects."""

    receiver = models.CharField(max_length=255)
    event_id = models.UUIDField()
    attempt = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.receiver} {self.event_id}"

    @classmethod
    def record(cls, receiver: str, envelope: Envelope) -> None:
        """The effect of ``receiver`` running on ``envelope``'s event, in its transaction."""
        cls.objects.create(receiver=receiver, event_id=envelope.event_id, attempt=envelope.attempt)

    @classmethod
    async def arecord(cls, receiver: str, envelope: Envelope) -> None:
        """``record()`` for async receivers."""
        await cls.objects.acreate(
            receiver=receiver, event_id=envelope.event_id, attempt=envelope.attempt
        )


class Account(EventRecordingMixin, models.Model):
    """An aggregate: the events recorded on an instance are published when it is saved."""

    owner = models.CharField(max_length=100, unique=True)
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))

    def __str__(self) -> str:
        return f"Account of {self.owner}"
