"""The inbox: one row per consumed message and consuming receiver (``models`` imports it, so
that Django finds it).

A receiver's row is inserted in the transaction that runs the receiver, so the row and the
receiver's effects commit together or not at all; the unique (message id, receiver) pair lets
only one copy of a message commit its effects.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_domain_events.ids import uuid7

NO_RECEIVER = ""
"""The receiver of a row that records a message no receiver took: unknown type, malformed."""


class InboxOutcome(models.TextChoices):
    """What consuming a message came to, for one receiver.

    ``processed``: the receiver ran and its effects committed with the row. ``failed``: it
    raised, its effects were rolled back, the message goes back to the broker for another
    attempt. ``dead``: its attempts are exhausted (or it gave up); the message was
    acknowledged and is kept here for a person to retry. ``unknown_type``: no receiver of
    this project takes its type. ``malformed``: not a CloudEvents message this app can read.
    """

    PROCESSED = "processed", _("processed")
    FAILED = "failed", _("failed")
    DEAD = "dead", _("dead")
    UNKNOWN_TYPE = "unknown_type", _("unknown type")
    MALFORMED = "malformed", _("malformed")


RETRYABLE_OUTCOMES = (
    InboxOutcome.FAILED,
    InboxOutcome.DEAD,
    InboxOutcome.UNKNOWN_TYPE,
    InboxOutcome.MALFORMED,
)
"""Outcomes a person can retry from the kept message."""


class InboxMessageQuerySet(models.QuerySet["InboxMessage"]):
    """Queries over the inbox."""

    def retryable(self) -> InboxMessageQuerySet:
        """Rows whose message can be consumed again: failed, dead, unknown type, malformed."""
        return self.filter(outcome__in=RETRYABLE_OUTCOMES)

    def received_before(self, outcome: str, before: dt.datetime) -> InboxMessageQuerySet:
        """Rows of ``outcome`` received before ``before``: what pruning deletes."""
        return self.filter(outcome=outcome, received_at__lt=before)


class InboxMessage(models.Model):
    """A message consumed from a broker, as one consuming receiver saw it."""

    id = models.UUIDField(_("id"), primary_key=True, default=uuid7, editable=False)
    message_id = models.CharField(
        _("message id"),
        max_length=255,
        help_text=_("The CloudEvents id of the message: what a redelivered copy repeats."),
    )
    receiver = models.CharField(
        _("receiver"),
        max_length=255,
        blank=True,
        help_text=_("Stable name of the consuming receiver (empty when none took it)."),
    )
    source = models.CharField(
        _("source"), max_length=255, blank=True, help_text=_("The service that sent it.")
    )
    event_type = models.CharField(
        _("event type"), max_length=255, blank=True, help_text=_("The CloudEvents type.")
    )
    version = models.PositiveIntegerField(
        _("version"), default=1, help_text=_("Schema version of its data (dataversion).")
    )
    event_id = models.UUIDField(
        _("event id"),
        null=True,
        blank=True,
        help_text=_("The outbox event id it carries (its id, when that is a UUID)."),
    )
    correlation_id = models.CharField(
        _("correlation id"),
        max_length=255,
        blank=True,
        help_text=_("Shared by every event that descends from the same first event."),
    )
    received_at = models.DateTimeField(_("received at"), help_text=_("When it was first consumed."))
    processed_at = models.DateTimeField(
        _("processed at"),
        null=True,
        blank=True,
        help_text=_("When the receiver's effects committed."),
    )
    outcome = models.CharField(_("outcome"), max_length=16, choices=InboxOutcome.choices)
    attempts = models.PositiveIntegerField(
        _("attempts"), default=0, help_text=_("Runs of the receiver that failed.")
    )
    last_error = models.TextField(
        _("last error"), blank=True, default="", help_text=_("The last failure, one line.")
    )
    traceback = models.TextField(
        _("traceback"), blank=True, default="", help_text=_("Traceback of the last failure.")
    )
    raw_headers = models.JSONField(
        _("raw headers"),
        null=True,
        blank=True,
        help_text=_("The message's headers as received, kept until it is processed."),
    )
    raw_body = models.BinaryField(
        _("raw body"),
        null=True,
        blank=True,
        help_text=_("The message's body as received, kept until it is processed."),
    )

    objects = InboxMessageQuerySet.as_manager()

    class Meta:
        db_table = "domain_events_inbox"
        verbose_name = _("consumed message")
        verbose_name_plural = _("consumed messages")
        ordering = ("-received_at",)
        permissions = (("retry_inboxmessage", _("Can retry consumed messages")),)
        constraints = (
            # The insert of a second copy conflicts here, in the database: no read-then-write
            # race between two consumers of one message.
            models.UniqueConstraint(
                fields=("message_id", "receiver"), name="dde_inbox_message_receiver_uniq"
            ),
        )
        indexes = (
            # The admin's default list, newest first; and pruning, by outcome and age.
            models.Index(fields=("received_at",), name="dde_inbox_received_idx"),
            models.Index(fields=("outcome", "received_at"), name="dde_inbox_outcome_idx"),
            # The admin's search by the carried event id.
            models.Index(fields=("event_id",), name="dde_inbox_event_idx"),
        )

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id} → {self.receiver or '-'} ({self.outcome})"
