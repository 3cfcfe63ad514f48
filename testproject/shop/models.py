"""The shop's own data, plus two tables that make the receivers' effects visible."""

from __future__ import annotations

from django.db import models

from django_domain_events import EventRecordingMixin


class Order(EventRecordingMixin, models.Model):
    """A customer's order: an aggregate that records its events, published when it is saved."""

    class Status(models.TextChoices):
        PLACED = "placed", "placed"
        PAID = "paid", "paid"
        CANCELLED = "cancelled", "cancelled"

    customer = models.EmailField(help_text="The customer's email address.")
    total = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLACED)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class Payment(models.Model):
    """Money received for an order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    provider_reference = models.CharField(
        max_length=64, help_text="The payment provider's id for the charge."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"Payment {self.provider_reference} for order #{self.order_id}"


class EmailLog(models.Model):
    """An email the shop sent (written by receivers instead of sending mail)."""

    to = models.EmailField()
    subject = models.CharField(max_length=200)
    sent = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-sent", "-id")

    def __str__(self) -> str:
        return f"{self.subject} → {self.to}"


class CrmSync(models.Model):
    """An order pushed to the CRM, with the event and attempt that did it."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="crm_syncs")
    event_id = models.UUIDField(help_text="The OrderPlaced event this sync handled.")
    correlation_id = models.CharField(max_length=255)
    attempt = models.PositiveIntegerField(help_text="Delivery attempt that succeeded (1 = first).")
    synced = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-synced", "-id")
        verbose_name = "CRM sync"

    def __str__(self) -> str:
        return f"CRM sync of order #{self.order_id}"


class CrmOrderStatus(models.Model):
    """An order's status as the CRM has it, written by an ordered receiver."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="crm_status")
    status = models.CharField(max_length=16)
    event_id = models.UUIDField(help_text="The OrderStatusChanged event that set it.")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated", "-id")
        verbose_name = "CRM order status"
        verbose_name_plural = "CRM order statuses"

    def __str__(self) -> str:
        return f"Order #{self.order_id} is {self.status} in the CRM"


class CrmMerge(models.Model):
    """A CRM contact being merged: until the merge is finished, the CRM refuses that
    customer's order updates."""

    contact = models.EmailField(unique=True)
    finished = models.BooleanField(
        default=False, help_text="Tick it, then retry the refused deliveries."
    )

    class Meta:
        ordering = ("contact",)
        verbose_name = "CRM contact merge"

    def __str__(self) -> str:
        return f"Merge of {self.contact}{' (finished)' if self.finished else ''}"
