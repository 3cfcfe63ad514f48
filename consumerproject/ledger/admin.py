"""The ledger in the admin, read-only; each entry links to the consumed message that booked
it. The inbox itself (Consumed messages) is django_domain_events' admin."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("order_id", "amount_cents", "currency", "booked_at", "consumed_message")
    search_fields = ("=order_id", "=event_id")
    readonly_fields = ("order_id", "amount_cents", "currency", "event_id", "booked_at")

    @admin.display(description="consumed message")
    def consumed_message(self, entry: LedgerEntry) -> SafeString:
        """The inbox row of the message that booked it, found by the event id it carried."""
        url = reverse("admin:django_domain_events_inboxmessage_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, entry.event_id, entry.event_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
