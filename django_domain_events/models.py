"""The outbox: one ``OutboxEvent`` row per published event, one ``Delivery`` per receiver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from django_domain_events.declaration.codec import PayloadJSONEncoder, UnreadableJSON
from django_domain_events.declaration.payload_types import MAX_PAYLOAD_DEPTH, too_deep
from django_domain_events.ids import uuid7
from django_domain_events.integration.inbox import InboxMessage as InboxMessage

# Defined beside the outbox's own two, imported here so that Django finds them.
from django_domain_events.records import AttemptOutcome as AttemptOutcome
from django_domain_events.records import DeliveryAttempt as DeliveryAttempt
from django_domain_events.records import OnceReceiverClaim as OnceReceiverClaim
from django_domain_events.records import OrderingKey as OrderingKey


class DeliveryState(models.TextChoices):
    """Where a delivery stands.

    ``pending`` (written, not yet handed over) → ``dispatched`` (handed to a queue) →
    ``delivered``; a failed attempt makes it ``failed`` (retry due at ``next_attempt_at``), and
    ``dead`` once its attempts are exhausted or the receiver gave up. A delivery to an ordered
    receiver is ``waiting`` while an earlier delivery of its ordering key to the same receiver
    is unsettled; it becomes ``pending`` (or ``dispatched``) when that one settles.
    ``scheduled`` is due at ``next_attempt_at`` and not runnable before: published with a due
    time, or put back by a receiver that raised ``NotYet``; the relay takes it once due.
    ``cancelled``: a person cancelled it before it was delivered; settled, kept for the audit.
    """

    PENDING = "pending", _("pending")
    DISPATCHED = "dispatched", _("dispatched")
    DELIVERED = "delivered", _("delivered")
    FAILED = "failed", _("failed")
    DEAD = "dead", _("dead")
    WAITING = "waiting", _("waiting")
    SCHEDULED = "scheduled", _("scheduled")
    CANCELLED = "cancelled", _("cancelled")


RUNNABLE_STATES = (DeliveryState.PENDING, DeliveryState.DISPATCHED, DeliveryState.FAILED)
"""States from which a delivery may still run its receiver."""

SETTLED_STATES = (DeliveryState.DELIVERED, DeliveryState.DEAD, DeliveryState.CANCELLED)
"""States that need no further work."""

CANCELLABLE_STATES = (
    DeliveryState.PENDING,
    DeliveryState.DISPATCHED,
    DeliveryState.FAILED,
    DeliveryState.WAITING,
    DeliveryState.SCHEDULED,
)
"""States of deliveries still owed, which a person can cancel."""

IN_LINE = ~models.Q(ordering_key="") & ~models.Q(state=DeliveryState.DELIVERED)
"""Deliveries to ordered receivers not delivered yet: the rows of ``dde_delivery_ordered_idx``.
Queries of ordering lines repeat this condition so that every database (SQLite too) can tell
they may read that small index instead of the receiver's delivered millions."""

NEEDS_ATTENTION = (
    models.Q(state=DeliveryState.FAILED)
    | models.Q(state=DeliveryState.SCHEDULED)
    | models.Q(state=DeliveryState.WAITING)
    | models.Q(state=DeliveryState.DEAD)
    | models.Q(state=DeliveryState.CANCELLED)
)
"""Deliveries neither in flight (pending, dispatched) nor delivered: the rows of the partial
state indexes ``dde_delivery_attention_idx`` and ``dde_delivery_rcv_attention_idx``. An OR of
equalities rather than ``IN``, so that SQLite, like PostgreSQL, can tell that a query for one of
these states may read those indexes."""


EVENT_COLUMNS = (
    "id",
    "event_type",
    "version",
    "payload",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "ordering_key",
    "headers",
)
"""The ``OutboxEvent`` columns of an event row tuple, in order: what publishing writes and
what running a delivery loads."""

DELIVERY_COLUMNS = (
    "id",
    "event",
    "receiver",
    "dispatcher",
    "queue",
    "state",
    "next_attempt_at",
    "created_at",
    "dispatched_at",
    "ordering_key",
    "task_id",
    "ordering_seq",
)
"""The ``Delivery`` columns of a delivery row tuple, in order: what publishing writes."""


class OutboxEventQuerySet(models.QuerySet["OutboxEvent"]):
    """Queries over outbox events."""

    def of_type(self, event_type: str) -> OutboxEventQuerySet:
        """Events of one type."""
        return self.filter(event_type=event_type)


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    """Queries over deliveries."""

    def runnable(self) -> DeliveryQuerySet:
        """Deliveries whose receiver may still run: pending, dispatched or failed."""
        return self.filter(state__in=RUNNABLE_STATES)

    def owed(self, now: dt.datetime | None = None) -> DeliveryQuerySet:
        """Deliveries due now: pending, failed or scheduled with ``next_attempt_at`` reached.

        Without ``now`` every pending, failed or scheduled delivery counts, due or not.
        """
        due: dict[str, Any] = {"next_attempt_at__lte": now} if now is not None else {}
        states = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.SCHEDULED)
        return self.filter(state__in=states, **due)

    def in_lines(self) -> DeliveryQuerySet:
        """Deliveries to ordered receivers that are not delivered yet (``models.IN_LINE``):
        start every query of ordering lines here, so it reads their partial index."""
        return self.filter(IN_LINE)

    def scheduled_due(self) -> DeliveryQuerySet:
        """Scheduled deliveries whose due time has come, by the database clock."""
        return self.filter(state=DeliveryState.SCHEDULED, next_attempt_at__lte=_db_now())

    def dead(self) -> DeliveryQuerySet:
        """Dead letters."""
        return self.filter(state=DeliveryState.DEAD)

    def pending_past(self, grace: dt.timedelta) -> DeliveryQuerySet:
        """Pending deliveries written more than ``grace`` ago, by the database clock: the
        dispatch at commit did not happen (the process died, or the dispatcher failed)."""
        return self.filter(state=DeliveryState.PENDING, created_at__lte=_db_now() - grace)

    def retry_due(self) -> DeliveryQuerySet:
        """Failed deliveries whose next attempt is due, by the database clock."""
        return self.filter(state=DeliveryState.FAILED, next_attempt_at__lte=_db_now())

    def dispatch_lost(self, timeout: dt.timedelta) -> DeliveryQuerySet:
        """Deliveries dispatched more than ``timeout`` ago and never settled, whose relay lease
        (if any) has ended: their task or their run was lost."""
        now = _db_now()
        return self.filter(
            models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lte=now),
            state=DeliveryState.DISPATCHED,
            dispatched_at__lte=now - timeout,
        )

    def claimed_by_relay(self, relay_id: str) -> DeliveryQuerySet:
        """Dispatched deliveries the relay ``relay_id`` still holds a claim on."""
        return self.filter(state=DeliveryState.DISPATCHED, claimed_by=relay_id)


def _db_now() -> Any:
    # The database's clock, never this host's: relays on several hosts compare times that one
    # clock wrote. Now() is typed as a datetime expression, so "Now() - timedelta" is too.
    return Now()


OutboxEventManager = models.Manager.from_queryset(OutboxEventQuerySet)
DeliveryManager = models.Manager.from_queryset(DeliveryQuerySet)


class StoredJSONField(models.JSONField):
    """A ``JSONField`` that reads any stored value without raising: a value nested deeper than
    ``MAX_PAYLOAD_DEPTH`` (which no publish writes) comes back as ``UnreadableJSON``, its text
    and why, whether or not this Python's decoder could read it, as Django already gives the
    text of invalid JSON. Loading, listing and deleting such a row then work, and running its
    delivery records why it cannot be delivered."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            decoded = super().from_db_value(value, expression, connection)
        except RecursionError:
            return UnreadableJSON(str(value), "nested too deeply for the JSON decoder")
        if (type(decoded) is dict or type(decoded) is list) and too_deep(decoded) is not None:
            return UnreadableJSON(
                str(value), f"nested more than {MAX_PAYLOAD_DEPTH} levels deep, the limit"
            )
        return decoded

    def deconstruct(self) -> Any:
        # Stored exactly as a JSONField: migrations need not know the difference.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class OutboxEvent(models.Model):
    """A published event, kept as the audit trail of what happened."""

    id = models.UUIDField(
        _("event id"),
        primary_key=True,
        default=uuid7,
        editable=False,
        help_text=_("Time-ordered UUID (version 7) assigned at publish."),
    )
    event_type = models.CharField(
        _("event type"),
        max_length=255,
        help_text=_("Stable name of the event, e.g. 'shop.OrderPlaced'."),
    )
    version = models.PositiveIntegerField(
        _("version"), default=1, help_text=_("Schema version of the payload as written.")
    )
    payload = StoredJSONField(
        _("payload"),
        encoder=PayloadJSONEncoder,
        help_text=_("The event's fields, as JSON. Never edited after publish."),
    )
    occurred_at = models.DateTimeField(
        _("occurred at"), help_text=_("When publish() was called (the database's time zone: UTC).")
    )
    correlation_id = models.CharField(
        _("correlation id"),
        max_length=255,
        help_text=_("Shared by every event caused, directly or not, by the same first event."),
    )
    causation_id = models.UUIDField(
        _("causation id"),
        null=True,
        blank=True,
        help_text=_("Id of the event whose receiver published this one, if any."),
    )
    ordering_key = models.CharField(
        _("ordering key"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Events with one key reach ordered receivers in publish order."),
    )
    headers = StoredJSONField(
        _("headers"),
        default=dict,
        blank=True,
        help_text=_("Transport metadata such as trace context."),
    )

    objects = OutboxEventManager()

    class Meta:
        db_table = "domain_events_outbox_event"
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        ordering = ("-occurred_at", "-id")
        indexes = (
            models.Index(fields=("occurred_at",), name="dde_event_time_idx"),
            models.Index(fields=("event_type", "occurred_at"), name="dde_event_type_time_idx"),
            models.Index(fields=("correlation_id",), name="dde_event_correlation_idx"),
            # Partial: most events are caused by no other, and publishing them need not touch it.
            models.Index(
                fields=("causation_id",),
                condition=models.Q(causation_id__isnull=False),
                name="dde_event_caused_idx",
            ),
        )
        permissions = (("replay_outboxevent", _("Can replay outbox events")),)

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"


class Delivery(models.Model):
    """One receiver's delivery of one event: its state, attempts and last error."""

    id = models.UUIDField(_("delivery id"), primary_key=True, default=uuid7, editable=False)
    event = models.ForeignKey(
        OutboxEvent,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("event"),
        help_text=_("The event being delivered."),
    )
    receiver = models.CharField(
        _("receiver"),
        max_length=255,
        help_text=_("Stable name of the receiver (default 'module.qualname')."),
    )
    dispatcher = models.CharField(
        _("dispatcher"),
        max_length=255,
        help_text=_("Name or dotted path of the dispatcher that runs this delivery."),
    )
    queue = models.CharField(
        _("queue"), max_length=255, blank=True, default="", help_text=_("Queue, where it applies.")
    )
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=DeliveryState.choices,
        default=DeliveryState.PENDING,
        help_text=_(
            "pending → dispatched → delivered; failed waits for a retry; scheduled waits for "
            "its due time; dead and cancelled are final."
        ),
    )
    attempts = models.PositiveIntegerField(
        _("attempts"), default=0, help_text=_("Times the receiver has been run for it.")
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("When it is due (again); empty once delivered, dead or cancelled."),
    )
    created_at = models.DateTimeField(_("created at"), help_text=_("When it was written."))
    dispatched_at = models.DateTimeField(
        _("dispatched at"), null=True, blank=True, help_text=_("When it was last handed over.")
    )
    last_attempt_at = models.DateTimeField(
        _("last attempt at"), null=True, blank=True, help_text=_("When the receiver last ran.")
    )
    delivered_at = models.DateTimeField(
        _("delivered at"), null=True, blank=True, help_text=_("When the receiver succeeded.")
    )
    last_error = models.TextField(
        _("last error"), blank=True, default="", help_text=_("The last failure, one line.")
    )
    traceback = models.TextField(
        _("traceback"), blank=True, default="", help_text=_("Traceback of the last failure.")
    )
    task_id = models.CharField(
        _("task id"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Id of the queue task carrying it, where the dispatcher has one."),
    )
    claimed_by = models.CharField(
        _("claimed by"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Relay holding a lease on it."),
    )
    claimed_until = models.DateTimeField(
        _("claimed until"), null=True, blank=True, help_text=_("When that lease ends.")
    )
    ordering_key = models.CharField(
        _("ordering key"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Copied from the event for ordered receivers."),
    )
    ordering_seq = models.BigIntegerField(
        _("ordering sequence"),
        null=True,
        blank=True,
        help_text=_("Place of its event in the ordering key's sequence: its publish order."),
    )

    objects = DeliveryManager()

    class Meta:
        db_table = "domain_events_delivery"
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ("-created_at", "-id")
        indexes = (
            # Partial: deliveries in flight (pending, dispatched) and delivered ones have
            # indexes of their own or need none, so publishing and settling do not touch these
            # two, and they do not grow with the outbox.
            models.Index(
                fields=("state", "next_attempt_at"),
                condition=NEEDS_ATTENTION,
                name="dde_delivery_attention_idx",
            ),
            models.Index(
                fields=("receiver", "state"),
                condition=NEEDS_ATTENTION,
                name="dde_delivery_rcv_attention_idx",
            ),
            # Partial: deliveries without a task (sync, deferred) never enter it.
            models.Index(
                fields=("task_id",),
                condition=~models.Q(task_id=""),
                name="dde_delivery_tasked_idx",
            ),
            # The relay's look-ups of owed deliveries; partial, so they hold only the few rows
            # in these states, not the delivered millions.
            models.Index(
                fields=("created_at",),
                condition=models.Q(state="pending"),
                name="dde_delivery_pending_idx",
            ),
            models.Index(
                fields=("dispatched_at",),
                condition=models.Q(state="dispatched"),
                name="dde_delivery_dispatched_idx",
            ),
            # The admin dashboard's outcomes per hour. Partial: rows never attempted (every
            # row at publish) are not in it, so publishing does not pay for it.
            models.Index(
                fields=("last_attempt_at",),
                condition=models.Q(last_attempt_at__isnull=False),
                name="dde_delivery_attempted_idx",
            ),
            # Deliveries to ordered receivers that are not delivered yet: where publish and
            # settling look for what is ahead of or behind a delivery in its key's line.
            models.Index(
                fields=("ordering_key", "receiver", "ordering_seq"),
                condition=IN_LINE,
                name="dde_delivery_ordered_idx",
            ),
        )
        constraints = (
            # A state no code handles would leave the delivery unworked for ever: refused.
            models.CheckConstraint(
                condition=models.Q(state__in=DeliveryState.values),
                name="dde_delivery_state_valid",
            ),
        )
        permissions = (
            ("retry_delivery", _("Can retry deliveries")),
            ("cancel_delivery", _("Can cancel deliveries")),
        )

    def __str__(self) -> str:
        return f"{self.receiver} ← {self.event_id} ({self.state})"
