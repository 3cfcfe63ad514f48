"""The tables kept beside the outbox (``models``, which Django reads, imports them from here):
each failed attempt of a delivery, the sequence of each ordering key, the claim of each once
receiver."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_domain_events.ids import uuid7


class AttemptOutcome(models.TextChoices):
    """How a failed attempt ended: the receiver raised, or ran past its time limit."""

    FAILED = "failed", _("failed")
    TIMED_OUT = "timed_out", _("timed out")


class DeliveryAttempt(models.Model):
    """One failed run of a delivery's receiver, kept as its history (``ATTEMPT_HISTORY``
    newest per delivery). Written in the transaction that records the failure on the
    delivery, so the two never disagree; deleted with the delivery."""

    id = models.UUIDField(_("attempt id"), primary_key=True, default=uuid7, editable=False)
    delivery = models.ForeignKey(
        "django_domain_events.Delivery",
        on_delete=models.CASCADE,
        related_name="attempt_history",
        verbose_name=_("delivery"),
        # dde_attempt_delivery_idx starts with it and serves its look-ups.
        db_index=False,
        help_text=_("The delivery whose receiver ran."),
    )
    attempt = models.PositiveIntegerField(
        _("attempt"),
        help_text=_("The attempt number its receiver saw (a retry starts again from 1)."),
    )
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.FAILED
    )
    started_at = models.DateTimeField(_("started at"), help_text=_("When the run began."))
    duration = models.DurationField(_("duration"), help_text=_("How long the run took."))
    error = models.TextField(
        _("error"), blank=True, default="", help_text=_("The failure, one line.")
    )
    traceback = models.TextField(
        _("traceback"), blank=True, default="", help_text=_("Traceback of the failure.")
    )
    worker = models.CharField(
        _("worker"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Host and process id that ran it."),
    )
    task_id = models.CharField(
        _("task id"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Id of the queue task that ran it, where there was one."),
    )

    class Meta:
        db_table = "domain_events_delivery_attempt"
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ("-id",)
        indexes = (
            # Attempt ids are time-ordered (UUIDv7): a delivery's history, newest first.
            models.Index(fields=("delivery", "id"), name="dde_attempt_delivery_idx"),
        )

    def __str__(self) -> str:
        return f"{self.delivery_id} attempt {self.attempt} ({self.outcome})"


class OrderingKey(models.Model):
    """The sequence of one ordering key: the number its last published event took.

    Publishing an event with the key takes the next number and holds this row's lock until
    its transaction ends, so numbers follow commit order; settling a delivery of the key takes
    the same lock before it releases the next delivery in line.
    """

    key = models.CharField(_("ordering key"), max_length=255, primary_key=True)
    last_seq = models.BigIntegerField(
        _("last sequence number"), default=0, help_text=_("Taken by the key's last event.")
    )

    class Meta:
        db_table = "domain_events_ordering_key"
        verbose_name = _("ordering key")
        verbose_name_plural = _("ordering keys")

    def __str__(self) -> str:
        return self.key


class OnceReceiverClaim(models.Model):
    """The event a ``@receiver(..., once=True)`` was delivered: one row per such receiver.

    ``publish()`` inserts it in the publishing transaction; the primary key lets one
    transaction win, so a later or concurrent event, in any process, gets no delivery.
    """

    receiver = models.CharField(
        _("receiver"),
        max_length=255,
        primary_key=True,
        help_text=_("Stable name of the once receiver."),
    )
    event_id = models.UUIDField(
        _("event id"), help_text=_("The event it was delivered (kept when the event is pruned).")
    )
    claimed_at = models.DateTimeField(
        _("claimed at"), help_text=_("When that event was published.")
    )

    class Meta:
        db_table = "domain_events_once_claim"
        verbose_name = _("once receiver claim")
        verbose_name_plural = _("once receiver claims")

    def __str__(self) -> str:
        return f"{self.receiver} ← {self.event_id}"
