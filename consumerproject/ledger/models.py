"""The accounting service's ledger: one entry per settled payment it heard of."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class LedgerEntry(models.Model):
    """A payment booked from a ``shop.PaymentSettled`` message. Nothing here is unique on
    purpose: that each message is booked once is the inbox's doing, and a copy booked twice
    would show as two entries."""

    order_id = models.BigIntegerField(_("order id"), help_text=_("The shop's order."))
    amount_cents = models.BigIntegerField(_("amount (cents)"))
    currency = models.CharField(_("currency"), max_length=3)
    event_id = models.UUIDField(
        _("event id"), help_text=_("The shop's event the message carried (its CloudEvents id).")
    )
    booked_at = models.DateTimeField(_("booked at"), auto_now_add=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["-booked_at"]

    def __str__(self) -> str:
        return f"Order #{self.order_id}: {self.amount_cents / 100:.2f} {self.currency}"
